"""Resumption on the wire: a cut connection comes back with every message exactly once."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from structlog.testing import capture_logs
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import CutProxy, serve
from ..timing import t
from .test_heartbeat import wait_count

SECRET = "s" * 32
TOTAL = 300


class Reader:
    """An opted-in client's view: the session frame and the data messages, counted."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.sessions: list[dict[str, Any]] = []

    @property
    def token(self) -> str:
        return str(self.sessions[-1]["token"])

    async def session(self, ws: ClientConnection) -> dict[str, Any]:
        """The session frame, which comes before any data message."""
        frame = await asyncio.wait_for(ws.recv(), t(5))
        assert isinstance(frame, str)
        session = dict(json.loads(frame))
        assert session["$stabilizer"] == "session"
        self.sessions.append(session)
        return session

    async def read(self, ws: ClientConnection, until: int | None = None) -> None:
        """Read until the socket ends (or ``until`` data messages were seen)."""
        try:
            while until is None or len(self.data) < until:
                frame = await asyncio.wait_for(ws.recv(), t(5))
                assert isinstance(frame, str)
                if frame.startswith('{"$stabilizer"'):
                    self.sessions.append(json.loads(frame))
                else:
                    self.data.append(frame)
        except ConnectionClosed:
            pass


async def publish(hub: Hub, count: int, every: float) -> None:
    for i in range(count):
        await hub.broadcast(f"{i:04d}")
        await asyncio.sleep(every)


def resume_url(base: str, reader: Reader) -> str:
    query = f"_stabilizer=1&_stabilizer_token={reader.token}&_stabilizer_seq={len(reader.data)}"
    return f"{base}/listen?{query}"


@pytest.mark.parametrize(("buffer", "lossless"), [(1 << 20, True), (40, False)])
async def test_cut_connection_resumes_exactly_once(buffer: int, lossless: bool) -> None:
    """A client whose TCP connection is cut resumes and gets every message once, in order;
    with a replay buffer too small, ``missed`` is exactly what was lost."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, resume_buffer_size=buffer)
    app, _ = build("starlette", hub)
    async with serve(app, "uvicorn-sansio") as url:
        port = int(url.rsplit(":", 1)[1])
        reader = Reader()
        async with CutProxy(port) as proxy:
            ws = await client(f"ws://127.0.0.1:{proxy.port}/listen?_stabilizer=1").__aenter__()
            await reader.session(ws)
            publisher = asyncio.create_task(publish(hub, TOTAL, 0.003))
            await reader.read(ws, until=50)
            proxy.cut()
            await reader.read(ws)  # whatever was already in the client's buffers
            await wait_count(hub, 0, 3)
            before_cut = len(reader.data)
            await asyncio.sleep(t(0.1))  # messages keep coming while it is away
        async with client(resume_url(url, reader)) as again:
            first = json.loads(await asyncio.wait_for(again.recv(), 3))
            reader.sessions.append(first)
            await publisher
            await reader.read(again, until=TOTAL - first["missed"])
        assert first["$stabilizer"] == "session"
        assert first["resumed"] is True
        assert first["session_id"] == reader.sessions[0]["session_id"]
        expected = [f"{i:04d}" for i in range(TOTAL)]
        if lossless:
            assert reader.data == expected
            assert first["missed"] == 0
            assert first["replayed"] > 0
        else:
            assert first["missed"] > 0
            lost = expected[before_cut : before_cut + first["missed"]]
            assert reader.data == [m for m in expected if m not in lost]
        print(
            f"\n[resume buffer={buffer}] received {before_cut} before the cut, "
            f"replayed {first['replayed']}, missed {first['missed']}"
        )


async def test_half_open_socket_is_replaced_4409() -> None:
    """Resuming while the old socket is still registered closes it 4409; nothing twice."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    app, _ = build("starlette", hub)
    async with serve(app, "uvicorn-sansio") as url:
        port = int(url.rsplit(":", 1)[1])
        reader = Reader()
        async with CutProxy(port) as proxy:
            ws = await client(f"ws://127.0.0.1:{proxy.port}/listen?_stabilizer=1").__aenter__()
            await reader.session(ws)
            for i in range(10):
                await hub.broadcast(f"{i:04d}")
            await reader.read(ws, until=10)
            proxy.blackhole()
            for i in range(10, 20):
                await hub.broadcast(f"{i:04d}")  # lost in the black hole
            (old,) = list(hub.registry)
            async with client(resume_url(url, reader)) as again:
                first = json.loads(await asyncio.wait_for(again.recv(), 3))
                await reader.read(again, until=20)
                assert old.close_code == 4409
                assert hub.handle(old).state in ("closing", "closed")
                for i in range(20, 25):
                    await hub.broadcast(f"{i:04d}")
                await reader.read(again, until=25)
        assert first["resumed"] is True
        assert first["replayed"] == 10
        assert reader.data == [f"{i:04d}" for i in range(25)]


def tampered(token: str) -> str:
    payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["cid"] = "someone-else"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{body}.{mac}"


async def test_bad_tokens_never_restore_a_session() -> None:
    """Forged, tampered, expired and replayed tokens each get a fresh session; the reason
    is on the handle and in the log."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, reconnect_token_ttl=t(1.0))
    app, _ = build("starlette", hub)
    async with serve(app, "uvicorn-sansio") as url:
        reader = Reader()
        async with client(f"{url}/listen?_stabilizer=1&client_id=alice") as ws:
            await reader.session(ws)
            original = reader.sessions[0]
            await hub.broadcast("hello")
            await reader.read(ws, until=1)
        await wait_count(hub, 0, 3)
        good = reader.token

        async def attempt(token: str) -> tuple[dict[str, Any], str | None]:
            query = f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq=1"
            async with client(f"{url}/listen?{query}") as ws:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 3))
                (connection,) = list(hub.registry)
                reason = hub.handle(connection).resume_reason
            await wait_count(hub, 0, 3)
            return frame, reason

        with capture_logs() as logs:
            forged, forged_reason = await attempt("eyJ2IjoxfQ.AAAA")
            bad, bad_reason = await attempt(tampered(good))
            resumed, _ = await attempt(good)
            replayed, replayed_reason = await attempt(good)
            await asyncio.sleep(t(1.1))
            expired, expired_reason = await attempt(resumed["token"])
        assert resumed["resumed"] is True
        assert resumed["session_id"] == original["session_id"]
        for frame in (forged, bad, replayed, expired):
            assert frame["resumed"] is False
            assert frame["session_id"] != original["session_id"]
        assert (forged_reason, bad_reason, replayed_reason, expired_reason) == (
            "invalid_token",
            "invalid_token",
            "token_spent",
            "token_expired",
        )
        refused = [e["reason"] for e in logs if e["event"] == "resume_refused"]
        assert refused == ["invalid_token", "invalid_token", "token_spent", "token_expired"]


async def test_plain_clients_see_no_control_frames() -> None:
    """A client that did not opt in never gets a $stabilizer frame."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    app, _ = build("starlette", hub)
    async with serve(app, "uvicorn-sansio") as url, client(f"{url}/listen") as ws:
        await wait_count(hub, 1, 3)
        await hub.broadcast("only data")
        assert await asyncio.wait_for(ws.recv(), 3) == "only data"


async def wait_until(check: Any, within: float, what: str) -> None:
    """Poll ``check()`` every 10 ms until it is true, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_resume_over_a_blocked_half_open_socket_keeps_live_delivery(
    server_kind: str,
) -> None:
    """A client whose path died silently (the server's writes to it block) resumes on a new
    socket while a group keeps publishing: live messages flow to the new socket at once, the
    old one is closed 4409, and every message arrives exactly once and in order."""
    # Messages large enough to fill the loopback buffers (a few MB) quickly; a replay buffer
    # large enough to hold everything the old socket swallowed, and an outbox that holds the
    # replay (it counts against max_send_queue).
    hub = Hub(
        heartbeat_interval=None,
        secret_key=SECRET,
        resume_buffer_size=64 << 20,
        max_send_queue=128 << 20,
    )
    app, _ = build("starlette", hub)
    total, pad = 600, "x" * 16000
    expected = ['{"ack":"join","ok":true}'] + [f"{i:05d}{pad}" for i in range(total)]

    async def publisher() -> None:
        for i in range(total):
            await hub.publish("room", f"{i:05d}{pad}")
            await asyncio.sleep(0.003)

    async with serve(app, server_kind) as url:
        port = int(url.rsplit(":", 1)[1])
        reader = Reader()
        async with CutProxy(port, upstream_rcvbuf=4096) as proxy:
            # No permessage-deflate: the padding would compress to nothing.
            ws = await client(
                f"ws://127.0.0.1:{proxy.port}/cmd?_stabilizer=1", compression=None
            ).__aenter__()
            await reader.session(ws)
            await ws.send('{"join": "room"}')
            await reader.read(ws, until=1)
            publishing = asyncio.create_task(publisher())
            await reader.read(ws, until=40)
            proxy.freeze()
            (old,) = list(hub.registry)
            # The server's writes to the old socket back up until they block.
            await wait_until(lambda: old.gate.writer is not None, t(10), "a blocked write")
            loop = asyncio.get_running_loop()
            async with client(resume_url(url, reader).replace("/listen", "/cmd")) as again:
                first = json.loads(await asyncio.wait_for(again.recv(), t(3)))
                resumed_at = loop.time()
                await publishing
                published_at = loop.time()
                await reader.read(again, until=len(expected))
                caught_up = loop.time() - published_at
                assert old.close_code == 4409
        assert first["resumed"] is True
        assert first["missed"] == 0
        assert len(reader.data) == len(expected)
        assert reader.data == expected
        # Well under send_timeout (10 s), which is how long the defect held deliveries back.
        assert caught_up < t(3), f"last message {caught_up:.2f} s after the last publish"
        print(
            f"\n[{server_kind}] replayed {first['replayed']}, resumed "
            f"{published_at - resumed_at:.2f} s before the last publish, "
            f"caught up {caught_up:.2f} s after"
        )
