"""Hostile clients against every real server: handshakes, tokens, malformed frames, floods.

Each test plays a client that does what no client library would and checks the contract that
matters under attack: never an HTTP 500; no registry slot, outbox or memory held for a client
that is gone or does not read; nothing of a session conferred by a token that did not resume
it; limits exact under concurrency; honest clients served throughout.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_ws_stabilizer import Hub

from ..apps import Recorder, build
from ..conftest import client
from ..servers import serve
from ..timing import t
from .hostile_client import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_TEXT,
    PING_TEXT,
    RawClient,
    frame,
    text,
)
from .test_heartbeat import wait_count

SECRET = "k" * 32
GENUINE = b"<genuine>"
"""Stands for a genuine, unspent resume token in a hostile query (each its own session)."""


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    """Poll ``condition`` until it holds, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.005)


async def settled(hub: Hub, count: int, within: float) -> bool:
    """Whether the hub comes back to ``count`` connections within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while hub.connection_count != count:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def session_frame(ws: ClientConnection) -> dict[str, Any]:
    """The opted-in client's first frame: the session control frame."""
    raw = await asyncio.wait_for(ws.recv(), t(5))
    assert isinstance(raw, str)
    frame_ = dict(json.loads(raw))
    assert frame_["$stabilizer"] == "session", frame_
    return frame_


async def genuine_token(url: str, hub: Hub) -> str:
    """The token of a fresh opted-in session whose client has left (nothing sent to it)."""
    async with client(url + "/listen?_stabilizer=1") as ws:
        token = str((await session_frame(ws))["token"])
    await wait_count(hub, 0, t(3))
    return token


async def echo_once(ws: ClientConnection, message: str) -> None:
    """Send ``message`` to /echo and get it back (answering heartbeat pings meanwhile)."""
    await ws.send(message)
    while True:
        got = await asyncio.wait_for(ws.recv(), t(3))
        if got == "ping":
            await ws.send("pong")
            continue
        assert got == message
        return


# -- 1. hostile handshake parameters ---------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One hostile handshake: the query string, sent byte for byte to /listen."""

    name: str
    query: bytes
    server_may_refuse: bool = False
    """Too big, or raw bytes outside ASCII: the server itself may refuse it (or never answer)
    before the app sees it. Whatever reaches the middleware is held to the full contract."""

    @property
    def opted_in(self) -> bool:
        """Whether the middleware takes it as opted in (the first ``_stabilizer`` counts)."""
        params = parse_qsl(self.query.decode("latin-1"), keep_blank_values=True)
        return next((v for k, v in params if k == "_stabilizer"), None) == "1"


def hostile_variants() -> list[Variant]:
    """Hostile resume parameters, tokens, client ids and query strings."""
    variants: list[Variant] = []
    seqs = {
        "superscript two": b"%C2%B2",  # isdigit() but not int()
        "Arabic-Indic three": b"%D9%A3",  # isdigit() and int() == 3
        "fullwidth five": b"%EF%BC%95",
        "5000 digits": b"9" * 5000,  # over int()'s 4300-digit limit
        "31 digits": b"1" + b"0" * 30,
        "-1": b"-1",
        "+5": b"%2B5",
        "plus as space": b"+5",
        "leading space": b"%205",
        "1e3": b"1e3",
        "empty": b"",
        "0x10": b"0x10",
        "1_000": b"1_000",
        "NUL": b"5%00",
    }
    for name, seq in seqs.items():
        variants += [
            Variant(
                f"seq {name}, genuine token",
                b"_stabilizer=1&_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=" + seq,
            ),
            Variant(
                f"seq {name}, garbage token",
                b"_stabilizer=1&_stabilizer_token=garbage&_stabilizer_seq=" + seq,
            ),
            Variant(
                f"seq {name}, genuine token, not opted in",
                b"_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=" + seq,
            ),
            Variant(f"seq {name}, opted in, no token", b"_stabilizer=1&_stabilizer_seq=" + seq),
        ]
    tokens = {
        "garbage": b"garbage",
        "empty": b"",
        "a dot": b".",
        "2000 dots": b"." * 2000,
        "many dotted parts": b"a.b" * 700,
        "5 kB": b"A" * 5000,
        "percent-encoded non-ASCII": b"%C3%A9%C3%A9.%C3%A9",
        "invalid UTF-8": b"%FF%FE.%80",
        "NUL": b"abc%00.def",
        "genuine plus a byte": GENUINE + b"x",
        "genuine plus a part": GENUINE + b".x",
        "byte plus genuine": b"x" + GENUINE,
    }
    for name, token in tokens.items():
        variants.append(
            Variant(f"token {name}", b"_stabilizer=1&_stabilizer_seq=0&_stabilizer_token=" + token)
        )
    variants += [
        Variant(
            "token of 100 kB",
            b"_stabilizer=1&_stabilizer_seq=0&_stabilizer_token=" + b"a" * 100_000,
            server_may_refuse=True,
        ),
        Variant(
            "token of raw non-ASCII bytes",
            b"_stabilizer=1&_stabilizer_seq=0&_stabilizer_token=\xc3\xa9.\xff",
            server_may_refuse=True,
        ),
        Variant("genuine token, no seq", b"_stabilizer=1&_stabilizer_token=" + GENUINE),
        Variant("garbage token, no seq", b"_stabilizer=1&_stabilizer_token=garbage"),
        Variant(
            "seq twice, good first",
            b"_stabilizer=1&_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=0"
            b"&_stabilizer_seq=%C2%B2",
        ),
        Variant(
            "seq twice, malformed first",
            b"_stabilizer=1&_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=%C2%B2"
            b"&_stabilizer_seq=0",
        ),
        Variant(
            "token twice",
            b"_stabilizer=1&_stabilizer_token=garbage&_stabilizer_token="
            + GENUINE
            + b"&_stabilizer_seq=0",
        ),
        Variant("opt-in twice", b"_stabilizer=0&_stabilizer=1&_stabilizer_seq=0"),
        Variant("opt-in superscript one", b"_stabilizer=%C2%B9"),
        Variant(
            "genuine token, another client id",
            b"_stabilizer=1&client_id=mallory&_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=0",
        ),
        Variant(
            "genuine token, malformed client id",
            b"_stabilizer=1&client_id=%FF%FE&_stabilizer_token=" + GENUINE + b"&_stabilizer_seq=0",
        ),
        Variant("client id twice, bad second", b"client_id=a&client_id=%00"),
        Variant("client id twice, bad first", b"client_id=%00&client_id=a"),
    ]
    client_ids = {
        "129 characters": b"a" * 129,
        "5 kB": b"a" * 5000,
        "slash": b"a/b",
        "encoded slash": b"a%2Fb",
        "space": b"a%20b",
        "plus": b"a+b",
        "ESC": b"%1B[31mred",
        "NUL": b"a%00b",
        "CRLF": b"a%0D%0Ab",
        "non-ASCII": b"%C3%A9",
        "invalid UTF-8": b"%ff%fe",
        "lone surrogate": b"%ED%A0%80",
        "empty": b"",
    }
    for name, value in client_ids.items():
        variants.append(Variant(f"client id {name}", b"client_id=" + value))
    variants += [
        Variant("client id without a value", b"client_id"),
        Variant("client id raw non-ASCII", b"client_id=\xc3\xa9", server_may_refuse=True),
        Variant("client id raw control byte", b"client_id=\x1b", server_may_refuse=True),
        Variant("percent garbage", b"%%%&&&==&=%zz&_stabilizer=%"),
        Variant(
            "2000 parameters",
            b"&".join(b"p%d=1" % i for i in range(2000)),
            server_may_refuse=True,
        ),
        Variant("query of 200 kB", b"x=" + b"a" * 200_000, server_may_refuse=True),
    ]
    return variants


async def try_variant(url: str, hub: Hub, variant: Variant, query: bytes) -> tuple[str, str]:
    """Run one hostile handshake; its outcome, and what is wrong with it ('' if nothing)."""
    before = hub.stats()
    seen_before = before["accepted"] + before["rejected_total"]
    baseline = hub.connection_count
    raw, response = await RawClient.handshake(
        url, b"/listen?" + query, timeout=t(0.5) if variant.server_may_refuse else t(5)
    )
    status = response.status
    outcome = f"{status} {response.reason or response.error or ''}".strip()
    problem = ""
    try:
        if status == 101:
            if variant.opted_in:
                try:
                    got = await raw.read_frame(t(3))
                except (TimeoutError, OSError):
                    got = None
                body = json.loads(got[1]) if got is not None and got[0] == OP_TEXT else {}
                if body.get("$stabilizer") != "session":
                    problem = f"opted in but no session frame first: {got!r:.80}"
                else:
                    outcome += f" resumed={body['resumed']}"
        elif status == 500:
            problem = "HTTP 500"
        elif status == 400 and response.reason:
            pass  # a clear refusal by the middleware
        elif status is not None and response.reason:
            problem = "refused for another reason than the request itself"
        else:
            after = hub.stats()
            seen = after["accepted"] + after["rejected_total"] != seen_before
            if not variant.server_may_refuse or seen:
                problem = "no clear answer (neither admitted nor refused with a reason)"
    finally:
        await raw.goodbye()
    if not await settled(hub, baseline, t(1)):
        problem = (problem + "; " if problem else "") + "registry slot leaked"
    return outcome, problem


async def test_hostile_handshake_parameters_never_500_nor_leak(server_kind: str) -> None:
    """Hostile resume parameters, tokens, client ids and huge queries are admitted or refused
    with a reason, never 500; every one frees its slot; then honest clients fill the server."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, max_connections=3)
    app, _ = build("starlette", hub)
    variants = hostile_variants()
    async with serve(app, server_kind) as url:
        needed = sum(v.query.count(GENUINE) for v in variants)
        genuine = [await genuine_token(url, hub) for _ in range(needed)]
        table: list[str] = []
        problems: list[str] = []
        for variant in variants:
            query = variant.query
            while GENUINE in query:
                query = query.replace(GENUINE, genuine.pop().encode(), 1)
            outcome, problem = await try_variant(url, hub, variant, query)
            table.append(f"{variant.name}: {outcome}")
            if problem:
                problems.append(f"{variant.name}: {outcome}: {problem}")
        honest: list[str] = []
        try:
            async with (
                client(url + "/echo") as a,
                client(url + "/echo") as b,
                client(url + "/echo") as c,
            ):
                for i, ws in enumerate((a, b, c)):
                    await echo_once(ws, f"honest {i}")
                    honest.append("ok")
        except InvalidStatus as exc:
            reason = exc.response.headers.get("x-stabilizer-reason")
            problems.append(
                f"honest client {len(honest) + 1}: HTTP {exc.response.status_code} {reason}"
            )
        if not await settled(hub, 0, t(3)):
            problems.append(f"at the end: the hub still counts {hub.connection_count} sockets")
    print(f"\n[{server_kind}] " + "\n".join(table))
    five_hundreds = [p for p in problems if "HTTP 500" in p]
    assert not problems, (
        f"{len(problems)} problems over {len(variants)} hostile handshakes "
        f"({len(five_hundreds)} got HTTP 500):\n" + "\n".join(problems)
    )


# -- 2. resume with a seq ahead of what was sent ----------------------------------------------


async def attempt_resume(url: str, hub: Hub, token: str, seq: int | str) -> dict[str, Any]:
    """Resume with ``token`` and ``seq``: the session frame plus the handle's resume_reason,
    or ``{"status": ..., "reason": ...}`` when the handshake is refused."""
    query = f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq={seq}"
    try:
        async with client(f"{url}/listen?{query}") as ws:
            result = await session_frame(ws)
            (connection,) = list(hub.registry)
            result["resume_reason"] = hub.handle(connection).resume_reason
    except InvalidStatus as exc:
        headers = exc.response.headers
        return {"status": exc.response.status_code, "reason": headers.get("x-stabilizer-reason")}
    await wait_count(hub, 0, t(3))
    return result


async def test_resume_seq_ahead_of_sent_is_not_trusted(server_kind: str) -> None:
    """A genuine token with a seq beyond what the session sent gets a fresh session (or a 400),
    never a silent ``resumed: true, missed: 0``; a later honest resume reports missed exactly."""
    # Ten-byte messages, a buffer of three: what was dropped is known exactly.
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, resume_buffer_size=30)
    app, _ = build("starlette", hub)
    messages = [f"message-{i:02d}" for i in range(8)]
    assert all(len(m) == 10 for m in messages)
    async with serve(app, server_kind) as url:
        async with client(url + "/listen?_stabilizer=1") as ws:
            original = await session_frame(ws)
            for message in messages[:3]:
                await hub.broadcast(message)
            for message in messages[:3]:
                assert await asyncio.wait_for(ws.recv(), t(3)) == message
            (connection,) = list(hub.registry)
            spare = [hub.handle(connection).resume_token() for _ in range(3)]
        await wait_count(hub, 0, t(3))

        for token, seq in zip(spare, (8, 10**30), strict=False):
            outcome = await attempt_resume(url, hub, token, seq)
            if "status" in outcome:
                assert outcome["status"] == 400, outcome
                assert outcome["reason"], outcome
                continue
            assert outcome["resumed"] is False, (
                f"seq {seq} with 3 messages sent was trusted: resumed={outcome['resumed']}, "
                f"replayed={outcome['replayed']}, missed={outcome['missed']}"
            )
            assert isinstance(outcome["resume_reason"], str), outcome
            assert outcome["session_id"] != original["session_id"]

        for message in messages[3:]:  # sent while the genuine client is away: 3 kept, 2 lost
            await hub.broadcast(message)
        async with client(
            f"{url}/listen?_stabilizer=1&_stabilizer_token={spare[2]}&_stabilizer_seq=3"
        ) as ws:
            resumed = await session_frame(ws)
            replay = [await asyncio.wait_for(ws.recv(), t(3)) for _ in range(3)]
    assert resumed["resumed"] is True
    assert resumed["session_id"] == original["session_id"]
    assert (resumed["replayed"], resumed["missed"]) == (3, 2)
    assert replay == messages[5:]


# -- 3. a refused token confers nothing --------------------------------------------------------


async def info(ws: ClientConnection) -> dict[str, Any]:
    """/info's data frame: the handle's ids as the app sees them."""
    raw = await asyncio.wait_for(ws.recv(), t(3))
    assert isinstance(raw, str)
    return dict(json.loads(raw))


async def assert_nothing_arrives(ws: ClientConnection, within: float) -> None:
    """Nothing comes on ``ws`` for ``within`` seconds."""
    try:
        got = await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return
    raise AssertionError(f"the replayer received {got!r}")


async def test_spent_token_confers_nothing(server_kind: str, flavour: str) -> None:
    """A token already spent gets its replayer a fresh session under its own client id: not the
    owner's id, and not the owner's messages."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    app, _ = build(flavour, hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/info?_stabilizer=1&client_id=owner") as ws:
            token = (await session_frame(ws))["token"]
            assert (await info(ws))["client_id"] == "owner"
        await wait_count(hub, 0, t(3))
        resume = f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq=1"
        async with client(f"{url}/info?{resume}") as owner:  # spends the token
            assert (await session_frame(owner))["resumed"] is True
            assert (await info(owner))["client_id"] == "owner"
            async with client(f"{url}/info?{resume}") as replayer:
                replayed = await session_frame(replayer)
                seen = await info(replayer)
                assert replayed["resumed"] is False
                assert seen["client_id"] != "owner", "the spent token conferred the owner's id"
                reached = await hub.send_to("owner", "secret")
                assert await asyncio.wait_for(owner.recv(), t(3)) == "secret"
                await assert_nothing_arrives(replayer, t(0.3))
                assert reached == 1
        await wait_count(hub, 0, t(3))


async def test_token_of_expired_session_confers_nothing(server_kind: str) -> None:
    """A genuine token whose session has expired gets a fresh session under its own id: the
    owner's id and messages stay out of reach."""
    ttl = t(0.3)
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, session_ttl=ttl)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/info?_stabilizer=1&client_id=owner") as ws:
            token = (await session_frame(ws))["token"]
            await info(ws)
        await wait_count(hub, 0, t(3))
        await asyncio.sleep(ttl + t(0.2))
        resume = f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq=1"
        async with client(f"{url}/info?{resume}") as replayer:
            replayed = await session_frame(replayer)
            seen = await info(replayer)
            (connection,) = list(hub.registry)
            assert replayed["resumed"] is False
            assert hub.handle(connection).resume_reason == "session_unknown"
            assert seen["client_id"] != "owner", "a dead session's token conferred its id"
            assert await hub.send_to("owner", "secret") == 0
            await assert_nothing_arrives(replayer, t(0.3))
        await wait_count(hub, 0, t(3))


# -- 4. malformed frames ----------------------------------------------------------------------


class Honest:
    """A well-behaved client echoing on /echo all along, in a task of its own."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.echoes = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            await echo_once(self.ws, f"honest {self.echoes}")
            self.echoes += 1
            await asyncio.sleep(0.005)

    async def still_echoing(self, task: asyncio.Task[None]) -> None:
        """Fail unless a few more echoes come back within a bound."""
        target = self.echoes + 3
        await wait_until(
            lambda: self.echoes >= target or task.done(), t(3), "honest client echoing"
        )
        if task.done():
            task.result()  # raises what broke it
            raise AssertionError("the honest client stopped")


VIOLATIONS = {
    "invalid UTF-8 in a text frame": text(b"ok \xff\xfe"),
    "unmasked client frame": frame(OP_TEXT, b"hi", masked=False),
    "reserved data opcode 0x3": frame(0x3, b"hi"),
    "reserved control opcode 0xB": frame(0xB, b""),
    "control frame over 125 bytes": frame(OP_PING, b"x" * 126),
    "fragmented control frame": frame(OP_PING, b"x", fin=False),
    "continuation without a start": frame(OP_CONT, b"x"),
    "new message inside a fragmented one": frame(OP_TEXT, b"a", fin=False) + text("b"),
    "RSV1 without an extension": frame(OP_TEXT, b"hi", rsv=4),
    "RSV2 and RSV3": frame(OP_TEXT, b"hi", rsv=3),
    "close frame with a 1-byte payload": frame(OP_CLOSE, b"\x03"),
    "close code 999": frame(OP_CLOSE, struct.pack("!H", 999)),
    "header claiming 2**62 bytes": frame(OP_BINARY, b"x" * 64, length=2**62),
}


async def test_malformed_frames_close_only_that_socket(server_kind: str) -> None:
    """Each protocol violation gets its socket closed and unregistered within a bound (by the
    server, or by the heartbeat when the server just waits); an honest client echoes
    throughout and the server keeps serving."""
    hub = Hub(heartbeat_interval=t(0.3), heartbeat_timeout=t(0.3), heartbeat_clients="all")
    app, _ = build("starlette", hub)
    problems: list[str] = []
    endings: list[str] = []
    async with serve(app, server_kind) as url, client(url + "/echo") as ws:
        honest = Honest(ws)
        task = asyncio.create_task(honest.run())
        try:
            for name, data in VIOLATIONS.items():
                raw, response = await RawClient.handshake(url, b"/echo")
                try:
                    assert response.status == 101, (name, response)
                    await wait_count(hub, 2, t(3))
                    await raw.send(data)
                    try:
                        ended = await raw.ended(t(3))
                    except TimeoutError:
                        ended = "still open"
                        problems.append(f"{name}: still open after {t(3)} s")
                finally:
                    raw.close()
                endings.append(f"{name}: {ended}")
                if not await settled(hub, 1, t(3)):
                    problems.append(f"{name}: still registered ({hub.connection_count} sockets)")
                await honest.still_echoing(task)
        finally:
            honest.stop.set()
            await asyncio.wait_for(task, t(5))
        async with client(url + "/echo") as late:
            await echo_once(late, "after all that")
    await wait_count(hub, 0, t(3))
    print(f"\n[{server_kind}] " + "\n".join(endings))
    assert not problems, "\n".join(problems)


# -- 5. floods from clients that never read --------------------------------------------------


async def app_got(rec: Recorder, count: int) -> None:
    """Wait until the app has received ``count`` messages."""
    await wait_until(lambda: len(rec.received) >= count, t(5), f"the app got {count} messages")


async def stall_server_writes(raw: RawClient, hub: Hub, rec: Recorder) -> None:
    """Have /echo send to a client that never reads until the server's send blocks: after
    that, whatever the middleware sends that socket has to wait in its outbox."""
    (connection,) = list(hub.registry)
    chunk = text("x" * (256 << 10))
    for i in range(1, 65):  # 16 MiB at most; loopback kernel buffers hold a few MiB
        await raw.send(chunk, t(5))
        await app_got(rec, i)
        if connection.gate.queued_bytes:  # the app's echo is stuck in the server's send
            return
    raise AssertionError("the server's writes never blocked")


async def test_ping_flood_from_non_reader_keeps_outbox_small(server_kind: str) -> None:
    """A client that never reads and floods ``ping`` gets its pongs coalesced: its outbox stays
    at a handful of frames and within max_send_queue, however many pings it sends."""
    # The server's writes to it are stalled first: otherwise loopback kernel buffers (a few
    # MiB) swallow every pong, and the outbox is never tested.
    pings = 50_000
    hub = Hub(heartbeat_interval=t(5), send_timeout=None)
    limit = hub.settings.max_send_queue
    assert limit is not None
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        raw, response = await RawClient.handshake(url, b"/echo", rcvbuf=4096)
        try:
            assert response.status == 101
            await wait_count(hub, 1, t(3))
            (connection,) = list(hub.registry)
            await stall_server_writes(raw, hub, rec)
            batch = PING_TEXT * 10_000
            for _ in range(pings // 10_000):
                await raw.send(batch, t(10))
            await raw.send(text("marker"), t(5))
            # The marker lands in the inbox (the app is stuck in its echo): every ping before
            # it has been read and answered by then.
            await wait_until(lambda: len(connection.inbox) > 0, t(20), "the pings were read")
            backlog, queued = connection.gate.backlog, connection.gate.queued_bytes
            async with client(url + "/echo") as ws:
                await echo_once(ws, "honest")
        finally:
            raw.close()
        await wait_count(hub, 0, t(5))
    assert backlog <= 4, f"{pings} pings left {backlog} frames ({queued} bytes) in the outbox"
    assert queued <= limit


async def test_data_flood_from_non_reader_stays_bounded(server_kind: str) -> None:
    """A client that floods /echo and never reads is pushed back (the server stops reading
    it); what the middleware holds for it stays within its bounds, and another client still
    gets its echoes and every broadcast."""
    max_send_queue = 64 << 10
    size = 4 << 10
    send_timeout = t(2)  # how long a write to a client that is gone may hold its slot
    hub = Hub(
        heartbeat_interval=None,
        max_send_queue=max_send_queue,
        slow_consumer_policy="drop_oldest",
        send_timeout=send_timeout,
    )
    app, _ = build("starlette", hub)
    budget = 64 << 20
    async with serve(app, server_kind) as url, client(url + "/echo") as honest:
        await wait_count(hub, 1, t(3))
        (other,) = list(hub.registry)
        raw, response = await RawClient.handshake(url, b"/echo", rcvbuf=4096)
        try:
            assert response.status == 101
            await wait_count(hub, 2, t(3))
            (flooder,) = [c for c in hub.registry if c is not other]
            batch = text("y" * size) * 16
            sent = 0
            worst = 0
            broadcasts = 0
            while sent < budget:
                try:
                    await raw.send(batch, t(0.5))
                except (TimeoutError, OSError):
                    break  # pushed back (the server stopped reading it), or dropped
                sent += len(batch)
                if sent % (1 << 20) < len(batch) and broadcasts < 40:
                    await hub.broadcast("b" * 1024)
                    broadcasts += 1
                worst = max(worst, max(c.memory_used for c in hub.registry))
            for _ in range(40 - broadcasts):
                await hub.broadcast("b" * 1024)
            worst = max(worst, max(c.memory_used for c in hub.registry))
            got = [await asyncio.wait_for(honest.recv(), t(3)) for _ in range(40)]
            await echo_once(honest, "still here")
            assert flooder.gate.queued_bytes <= max_send_queue + size
        finally:
            raw.close()
        await wait_count(hub, 1, send_timeout + t(3))
    assert sent < budget, f"{sent} bytes accepted from a client that never reads"
    assert got == ["b" * 1024] * 40
    bound = max_send_queue + (hub.settings.receive_queue_size + 2) * size
    assert worst <= bound, f"{worst} bytes held for one socket (bound {bound})"


# -- 6. limits under concurrent handshakes ---------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "admitted", "status", "reason", "query"),
    [
        ("max_connections", 5, 503, "server_full", b""),
        ("max_connections_per_ip", 3, 429, "ip_limit", b""),
        ("max_connections_per_client", 2, 429, "client_limit", b"?client_id=same"),
    ],
)
async def test_limits_hold_under_concurrent_handshakes(
    server_kind: str, setting: str, admitted: int, status: int, reason: str, query: bytes
) -> None:
    """Forty handshakes at once against a limit: exactly the limit admitted, never more
    registered, the rest refused with the limit's status and reason; all freed after."""
    attempts = 40
    limit: dict[str, Any] = {setting: admitted}
    hub = Hub(heartbeat_interval=None, **limit)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        peak = 0
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, hub.connection_count)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(
            *(RawClient.handshake(url, b"/listen" + query) for _ in range(attempts))
        )
        done.set()
        await watcher
        peak = max(peak, hub.connection_count)
        try:
            outcomes = sorted((r.status or 0, r.reason or r.error) for _, r in results)
            expected = sorted([(101, "")] * admitted + [(status, reason)] * (attempts - admitted))
            assert outcomes == expected
            assert peak == admitted
        finally:
            for raw, _ in results:
                await raw.goodbye()
        await wait_count(hub, 0, t(3))
    assert hub.stats()["rejected"] == {reason: attempts - admitted}


# -- 7. rate limit burst ---------------------------------------------------------------------


async def read_until_closed(ws: ClientConnection) -> None:
    """Read (and drop) frames until the connection is closed."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        return


async def test_rate_limit_burst_closes_4429_on_every_server_hypercorn_included(
    server_kind: str,
) -> None:
    """Forty messages at once against rate_limit=5 (burst 5) close the connection with 4429
    within a bound, on hypercorn too (known defect there: it stays open)."""
    hub = Hub(heartbeat_interval=None, rate_limit=5, rate_limit_burst=5)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        for i in range(40):
            await ws.send(f"m{i}")
        try:
            await asyncio.wait_for(read_until_closed(ws), t(3))
        except TimeoutError:
            close = ws.protocol.close_rcvd
            pytest.fail(
                f"still open {t(3)} s after a burst of 40 (close frame received: "
                f"{close.code if close else None}; the app got {len(rec.received)} messages; "
                f"rate_limited={hub.stats()['rate_limited']})"
            )
        assert ws.close_code == 4429
        await wait_count(hub, 0, t(3))
    assert len(rec.received) <= 5 + 1
    assert hub.stats()["rate_limited"] == 1
