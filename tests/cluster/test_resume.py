"""Resume anywhere (issue 13): with the Redis backend a session lives in Redis, so a client
resumes on any worker with its messages (exactly once, in order), client id, user data and
groups; tokens are single-use cluster-wide; a half-open socket elsewhere is closed 4409."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable

import pytest

from ..timing import t
from .conftest import StartCluster
from .redis_server import RedisServer
from .resumers import (
    Resumer,
    Socket,
    close_every_socket,
    connect_all,
    label,
    open_socket,
    resume_all,
    resume_query,
    wait_data,
    wait_last,
)
from .waits import eventually
from .workers import Cluster

QUIET = {"WS_STABILIZER_HEARTBEAT_INTERVAL": "60"}
"""No text heartbeat during a test (the clients would answer it, but it is noise)."""
USER_DATA_SAVED = 1.6
"""Seconds after a change of user_data by which it is in Redis (the contract says ~1 s)."""


@pytest.fixture(autouse=True)
async def sockets_closed(cluster: StartCluster) -> AsyncIterator[None]:
    """Close every resumable client's socket before the cluster's workers are stopped."""
    yield
    await close_every_socket()


def numbers(frames: Iterable[str]) -> list[int]:
    """The numbered messages of a burst (texts ``"0"``, ``"1"``, …) among ``frames``."""
    return [int(f) for f in frames if f.isdigit()]


def sequence_problems(got: list[int], n: int) -> str:
    """What is wrong with ``got`` compared with ``0 .. n-1``: missing, doubled, out of order."""
    counts = Counter(got)
    missing = [i for i in range(n) if i not in counts]
    doubled = sorted(i for i, k in counts.items() if k > 1)
    disorder = next((k for k in range(1, len(got)) if got[k] <= got[k - 1]), None)
    at = f"at index {disorder} ({got[disorder - 1]} then {got[disorder]})" if disorder else "none"
    return (
        f"{len(got)} messages for {n}; missing {len(missing)} {missing[:10]}; "
        f"twice {len(doubled)} {doubled[:10]}; first disorder {at}"
    )


def padded(text: str, size: int) -> str:
    """``text`` padded with ``x`` to ``size`` ASCII characters (``size`` payload bytes)."""
    assert len(text) < size
    return text.ljust(size, "x")


def kept_newest(sizes: list[int], limit: int) -> int:
    """How many of the newest messages a replay buffer of ``limit`` payload bytes still holds:
    the longest run of newest messages whose sizes sum to at most ``limit``."""
    total = kept = 0
    for size in reversed(sizes):
        if total + size > limit:
            break
        total += size
        kept += 1
    return kept


def no_errors_logged(c: Cluster) -> None:
    """No worker logged a traceback or an error-level event."""
    for worker in c.workers:
        errors = [x for x in worker.output().splitlines() if "Traceback" in x or "[error" in x]
        assert not errors, f"{worker.name} logged errors: {errors[:5]}"


async def closed_within(socket: Socket, within: float, what: str) -> None:
    async def check() -> None:
        assert socket.closed.is_set(), f"{what}: {socket!r} is still open"

    await eventually(check, within, interval=0.01)


async def all_closed(resumers: list[Resumer], within: float, what: str) -> None:
    async def check() -> None:
        still = [r for r in resumers if r.socket.open]
        assert not still, f"{what}: {len(still)} sockets still open, e.g. {still[0]!r}"

    await eventually(check, within, interval=0.05)


async def fresh_session(socket: Socket, reason: str, old: dict[str, object]) -> None:
    """``socket`` got a fresh session for ``reason``, with nothing of the session ``old``."""
    session = socket.session
    assert session["resumed"] is False, f"{reason}: resumed with a refused token: {session}"
    assert session["session_id"] != old["session_id"], f"{reason}: the old session id: {session}"
    assert (session["replayed"], session["missed"]) == (0, 0), f"{reason}: {session}"
    ready = await socket.ready()
    assert ready["resume_reason"] == reason, f"want resume_reason {reason!r}: {ready}"
    assert ready["resumed"] is False, ready
    assert ready["client_id"] != old["client_id"], f"{reason}: the old client id came back: {ready}"
    assert ready["user_data"] == {}, f"{reason}: the old user_data came back: {ready}"
    assert ready["groups"] == [], f"{reason}: the old groups came back: {ready}"
    assert label(socket.frames[0]) == "<ready>", (
        f"{reason}: the first data message is not the app's ready (a replay?): {socket.frames}"
    )


async def test_a_session_resumes_on_another_worker_with_messages_data_and_groups(
    cluster: StartCluster,
) -> None:
    """5 group messages on worker A, a drop, 3 more published by C while away: the resume on B
    replays exactly those 3 (missed 0), in order, and brings back the client id, user_data and
    groups; then a group publish from every worker reaches the client on B."""
    c = await cluster(3, QUIET)
    a, b, w3 = c.workers
    alice = await Resumer.connect(a, "alice", ["ga"])
    first = await alice.socket.ready()
    assert (first["client_id"], first["groups"], first["resumed"]) == ("alice", ["ga"], False)
    original = alice.socket.session
    await alice.socket.command("set color blue", {"set": "color"})
    for i in range(5):
        await c.publish(a, "ga", f"m{i}")
    await wait_last([alice], "m4", t(3))
    await asyncio.sleep(t(USER_DATA_SAVED))
    alice.drop()
    await asyncio.sleep(t(0.3))
    for i in range(5, 8):
        await c.publish(w3, "ga", f"m{i}")
    assert alice.labels == ["<ready>", "<set color>", "m0", "m1", "m2", "m3", "m4"]

    socket = await alice.resume(b)
    session = socket.session
    assert session["resumed"] is True, f"the session did not resume on another worker: {session}"
    assert session["session_id"] == original["session_id"], f"another session id: {session}"
    assert (session["replayed"], session["missed"]) == (3, 0), (
        f"want replayed 3, missed 0: {session}"
    )
    ready = await socket.ready()
    assert socket.frames[:3] == ["m5", "m6", "m7"], f"replay: {socket.frames}"
    assert ready["client_id"] == "alice", f"client id not back: {ready}"
    assert ready["user_data"] == {"color": "blue"}, f"user_data not back: {ready}"
    assert ready["groups"] == ["ga"], f"groups not back: {ready}"

    for worker in c.workers:
        await c.publish(worker, "ga", f"after {worker.name}")
        await wait_last([alice], f"after {worker.name}", t(3))
    assert alice.labels == [
        "<ready>", "<set color>", *(f"m{i}" for i in range(8)), "<ready>",
        *(f"after {w.name}" for w in c.workers),
    ]  # fmt: skip
    assert alice.socket.open, alice.socket
    no_errors_logged(c)
    handle = (ready["resumed"], ready["replayed"], ready["missed"], ready["resume_reason"])
    assert handle == (True, 3, 0, None), (
        f"the handle (resumed, replayed, missed, resume_reason) disagrees with the session "
        f"frame {session}: {handle}"
    )


async def test_b_clients_of_a_killed_worker_resume_elsewhere_with_every_message_once(
    cluster: StartCluster,
) -> None:
    """SIGKILL of worker A while C broadcasts 1,000 numbered messages: each of A's 24 clients
    resumes on B or C and ends with every number once, in order, plus its direct (send_to)
    and app messages once; user_data set 1.6 s before the kill is back."""
    c = await cluster(3, QUIET)
    a, b, w3 = c.workers
    n = 1000
    victims = await connect_all([(a, f"k{i}", []) for i in range(24)])
    witnesses = await connect_all([(w, f"w-{w.name}", []) for w in (b, w3)])
    keepers = victims[:8]
    for i, r in enumerate(keepers):
        await r.socket.command(f"set n {i}", {"set": "n"})
    # Long enough for user_data to be in Redis although the socket never ends cleanly.
    await asyncio.sleep(t(USER_DATA_SAVED))

    # About 2 s of traffic: 10 messages, then 20 ms of quiet.
    await c.burst(w3, n=n, every=10, pause=0.02, background=True)
    await wait_data(victims, lambda r: len(numbers(r.data)) >= 50, "the burst began", t(5))
    direct = {r.name: [f"direct {r.name} {k}" for k in range(3)] for r in victims[::3]}
    own = {r.name: [f"app {r.name} {k}" for k in range(3)] for r in victims[1::3]}
    for k in range(3):
        for name in direct:
            sent = await c.send_to(a, name, direct[name][k])
            assert sent == 1, f"send_to {name} reached {sent} sockets"
        for name in own:
            sent = await c.app_send(a, name, own[name][k])
            assert sent == 1, f"app_send {name} reached {sent} sockets"
    extras = {name: direct.get(name, []) + own.get(name, []) for name in (r.name for r in victims)}
    await wait_data(
        victims,
        lambda r: all(m in r.data for m in extras[r.name]),
        "direct and app messages from A",
        t(3),
    )
    assert not (await c.burst_status(w3))["done"], "the burst ended before the kill"
    c.kill(a)
    await all_closed(victims, t(5), "the clients of the killed worker")
    await resume_all([(r, (b, w3)[i % 2]) for i, r in enumerate(victims)])

    status = await c.burst_done(w3, t(20))
    assert status["errors"] == [], status
    assert status["sent"] == n, status
    await c.broadcast(w3, "end")
    await wait_last(victims + witnesses, "end", t(10))

    replayed = sum(int(r.socket.session["replayed"]) for r in victims)
    assert replayed > 0, "nothing was replayed: no message fell between the kill and a resume"
    for i, r in enumerate(victims):
        _, new = r.sockets
        assert new.session["resumed"] is True, f"{r!r} did not resume: {new.session}"
        assert new.session["missed"] == 0, f"{r!r} missed messages: {new.session}"
        assert new.worker is (b, w3)[i % 2]
        got = numbers(r.data)
        assert got == list(range(n)), f"{r!r}: {sequence_problems(got, n)}"
        for prefix in ("direct", "app"):
            mine = [f for f in r.data if f.startswith(prefix + " ")]
            want = [m for m in extras[r.name] if m.startswith(prefix + " ")]
            assert mine == want, f"{r!r}: {prefix} messages {mine}, want {want} once each"
        ready = await new.ready()
        assert ready["client_id"] == r.name, f"{r!r}: client id not back: {ready}"
        want_data = {"n": str(i)} if r in keepers else {}
        assert ready["user_data"] == want_data, (
            f"{r!r}: user_data set {USER_DATA_SAVED} s before the SIGKILL is not back: {ready}"
        )
        assert Counter(r.labels) == Counter(
            ["<ready>"] * 2
            + (["<set n>"] if r in keepers else [])
            + [str(k) for k in range(n)]
            + extras[r.name]
            + ["end"]
        ), f"{r!r}: unexpected or doubled messages"
        assert new.open, new
    print(f"\n[sigkill] {len(victims)} clients resumed; {replayed} messages replayed in all")
    for r in witnesses:
        got = numbers(r.data)
        assert got == list(range(n)), f"{r!r} (never cut): {sequence_problems(got, n)}"
        assert r.labels == ["<ready>", *(str(k) for k in range(n)), "end"]
    no_errors_logged(c)


async def test_c_missed_is_exact_when_the_replay_buffer_overflowed(cluster: StartCluster) -> None:
    """With a 1,000-byte replay buffer, messages of 100 bytes sent from B while the clients are
    away: on the resume (on C) ``missed`` is exactly how many the buffer dropped, and the
    newest ones are replayed in order."""
    limit = 1000
    c = await cluster(3, {**QUIET, "WS_STABILIZER_RESUME_BUFFER_SIZE": str(limit)})
    a, b, w3 = c.workers
    away = {"x": 50, "y": 10, "z": 11}
    clients = await connect_all([(a, name, []) for name in away])
    x = clients[0]
    before = [padded(f"x before {k}", 100) for k in range(3)]
    for message in before:
        await c.send_to(b, "x", message)
    await wait_last([x], before[-1], t(3))
    for r in clients:
        r.drop()
    await asyncio.sleep(t(0.3))
    sent = {name: [padded(f"{name} {i}", 100) for i in range(k)] for name, k in away.items()}
    for name, messages in sent.items():
        for message in messages:
            await c.send_to(b, name, message)

    expected: dict[str, tuple[int, int]] = {}
    for r in clients:
        sizes = [len(f.encode()) for f in r.data] + [len(m) for m in sent[r.name]]
        replayed = min(kept_newest(sizes, limit), len(sent[r.name]))
        expected[r.name] = (replayed, len(sent[r.name]) - replayed)
    # The buffer keeps the newest 10 (1,000 bytes): 40 lost of 50, none of 10, 1 of 11.
    assert expected == {"x": (10, 40), "y": (10, 0), "z": (10, 1)}, expected

    sockets = await resume_all([(r, w3) for r in clients])
    handles: dict[str, tuple[int, int]] = {}
    for r, socket in zip(clients, sockets, strict=True):
        want_replayed, want_missed = expected[r.name]
        session = socket.session
        assert session["resumed"] is True, f"{r!r}: {session}"
        assert (session["replayed"], session["missed"]) == (want_replayed, want_missed), (
            f"{r!r}: {len(sent[r.name])} sent while away to a {limit}-byte buffer: want "
            f"replayed {want_replayed}, missed {want_missed}; got {session}"
        )
        ready = await socket.ready()
        handles[r.name] = (ready["replayed"], ready["missed"])
        assert socket.frames[:want_replayed] == sent[r.name][want_missed:], (
            f"{r!r}: the replay is not the newest {want_replayed} in order: "
            f"{[f.split()[:2] for f in socket.frames[:want_replayed]]}"
        )
    await c.broadcast(a, "end")
    await wait_last(clients, "end", t(3))
    for r in clients:
        _, missed = expected[r.name]
        head = ["<ready>", *(before if r is x else [])]
        assert r.labels == [*head, *sent[r.name][missed:], "<ready>", "end"], (
            f"{r!r}: {[f.split()[:2] for f in r.labels]}"
        )
    no_errors_logged(c)
    assert handles == expected, (
        f"the handles' (replayed, missed) disagree with the session frames {expected}: {handles}"
    )


def forged(token: str) -> str:
    """``token`` with one character of its signature changed."""
    payload, mac = token.split(".")
    k = len(mac) // 2
    return f"{payload}.{mac[:k]}{'B' if mac[k] == 'A' else 'A'}{mac[k + 1 :]}"


async def test_d_a_token_resumes_once_cluster_wide_and_bad_tokens_confer_nothing(
    cluster: StartCluster,
) -> None:
    """One token presented to B and C at once resumes on exactly one (the other: token_spent);
    a spent, a forged and an expired token each get a fresh session with the right reason and
    nothing of the old one; the forged attempt leaves the genuine token good."""
    ttl = t(2)
    c = await cluster(3, {**QUIET, "WS_STABILIZER_RECONNECT_TOKEN_TTL": str(ttl)})
    a, b, w3 = c.workers
    loop = asyncio.get_running_loop()
    # For the expired token, first: its clock runs while the rest happens.
    edna = await Resumer.connect(w3, "edna", ["ge"])
    edna_issued = loop.time()
    await edna.socket.ready()
    await edna.socket.command("set who edna", {"set": "who"})
    edna.drop()

    dora = await Resumer.connect(a, "dora", ["gd"])
    await dora.socket.ready()
    await dora.socket.command("set secret s3", {"set": "secret"})
    for i in range(2):
        await c.publish(a, "gd", f"d{i}")
    await wait_last([dora], "d1", t(3))
    old = {**dora.socket.session, "client_id": "dora"}
    token, seq = dora.token, dora.count
    dora.drop()
    await asyncio.sleep(t(0.3))

    pair = await asyncio.gather(
        open_socket(b, resume_query(token, seq)), open_socket(w3, resume_query(token, seq))
    )
    winners = [s for s in pair if s.session["resumed"]]
    assert len(winners) == 1, (
        f"one token, two workers at once: {len(winners)} resumed: {[s.session for s in pair]}"
    )
    (winner,) = winners
    (loser,) = [s for s in pair if s is not winner]
    assert winner.session["session_id"] == old["session_id"], winner.session
    won = await winner.ready()
    assert (won["client_id"], won["user_data"], won["groups"]) == (
        "dora",
        {"secret": "s3"},
        ["gd"],
    ), f"the winner did not get the session back: {won}"
    await fresh_session(loser, "token_spent", old)
    dora.sockets.append(winner)

    spent = await open_socket(a, resume_query(token, seq))
    await fresh_session(spent, "token_spent", old)
    bad = await open_socket(b, resume_query(forged(dora.token), dora.count))
    await fresh_session(bad, "invalid_token", old)
    # The forged attempt spent nothing: the genuine token resumes (replacing the winner 4409).
    again = await dora.resume(a)
    assert again.session["resumed"] is True, f"the genuine token after a forged one: {again}"
    await closed_within(winner, t(2), "the replaced socket")
    assert winner.close_code == 4409, winner

    await asyncio.sleep(max(0.0, edna_issued + ttl + t(0.5) - loop.time()))
    expired = await open_socket(a, resume_query(edna.token, edna.count))
    await fresh_session(expired, "token_expired", {**edna.sockets[0].session, "client_id": "edna"})

    await c.publish(b, "gd", "d2")
    await c.publish(b, "ge", "e-late")
    await c.broadcast(w3, "end")
    refused = [Resumer(f"refused-{k}", [s]) for k, s in enumerate((loser, spent, bad, expired))]
    await wait_last([dora, *refused], "end", t(3))
    for r in refused:
        assert r.labels == ["<ready>", "end"], f"{r!r} got more than a fresh session's: {r.labels}"
    assert dora.labels == [
        "<ready>", "<set secret>", "d0", "d1", "<ready>", "<ready>", "d2", "end"
    ]  # fmt: skip
    no_errors_logged(c)


async def test_e_a_half_open_socket_elsewhere_is_closed_4409_and_nothing_comes_twice(
    cluster: StartCluster,
) -> None:
    """The client stops reading its socket on A (half-open for it) and resumes on B: A's socket
    is closed 4409 within 1 s; the replay has what A sent after the client's count, and no
    message sent after the resume reaches the old socket (each once over both)."""
    c = await cluster(3, QUIET)
    a, b, w3 = c.workers
    erin = await Resumer.connect(a, "erin", ["ge"])
    await erin.socket.ready()
    for i in range(3):
        await c.publish(b, "ge", f"e{i}")
    await wait_last([erin], "e2", t(3))
    old = erin.socket
    old.stop_counting()
    for i in range(3, 5):
        await c.publish(w3, "ge", f"e{i}")

    async def served() -> None:
        assert old.frames[-1:] == ["e4"], f"A's socket is still served: {old.frames}"

    await eventually(served, t(3))
    loop = asyncio.get_running_loop()
    began = loop.time()
    new = await erin.resume(b)
    await closed_within(old, t(1), "the half-open socket on A, 1 s after the resume on B")
    assert old.close_code == 4409, f"A's socket closed {old.close_code} {old.close_reason!r}"
    assert old.closed_at is not None
    session = new.session
    assert session["resumed"] is True, f"no resume over a half-open socket: {session}"
    assert (session["replayed"], session["missed"]) == (2, 0), (
        f"want replayed 2 (e3, e4: sent to A after the client's count), missed 0: {session}"
    )
    await new.ready()  # after the replay
    assert new.frames[:2] == ["e3", "e4"], new.frames
    late = [f"late {w.name}" for w in c.workers]
    for worker, message in zip(c.workers, late, strict=True):
        await c.publish(worker, "ge", message)
        await wait_last([erin], message, t(3))
    assert erin.labels == ["<ready>", "e0", "e1", "e2", "e3", "e4", "<ready>", *late]
    both = Counter(old.frames + new.frames)
    assert all(both[m] == 1 for m in late), f"after the resume, over both sockets: {both}"
    assert not set(late) & set(old.frames), f"the replaced socket got {old.frames}"
    no_errors_logged(c)
    print(f"\n[half-open] closed 4409 {old.closed_at - began:.3f} s after the resume began")


async def test_f_200_clients_of_a_draining_worker_resume_on_the_others(
    cluster: StartCluster,
) -> None:
    """SIGTERM to worker A with 200 opted-in clients while C broadcasts 150 numbered messages:
    each gets one drain frame and 1012, resumes on B or C with the drain frame's token and
    missed 0, and ends with every number once, in order."""
    c = await cluster(3, QUIET)
    a, b, w3 = c.workers
    n = 150
    clients = await connect_all([(a, f"d{i}", []) for i in range(200)])
    # About 1 s of traffic: 5 messages, then 30 ms of quiet.
    await c.burst(w3, n=n, every=5, pause=0.03, background=True)
    await wait_data(clients, lambda r: len(numbers(r.data)) >= 5, "the burst began", t(5))
    assert not (await c.burst_status(w3))["done"], "the burst ended before the drain"
    c.terminate(a)
    await all_closed(clients, t(10), "the clients of the draining worker")
    for r in clients:
        drains = [x for x in r.socket.controls if x["$stabilizer"] == "drain"]
        assert len(drains) == 1, f"{r!r}: {len(drains)} drain frames: {r.socket.controls}"
        assert isinstance(drains[0].get("token"), str), drains[0]
        assert isinstance(drains[0].get("retry_after_ms"), int), drains[0]
        assert drains[0]["token"] != r.socket.session["token"], "the drain frame's token is new"
        assert r.socket.close_code == 1012, (r, r.socket.close_code, r.socket.close_reason)
    sockets = await resume_all([(r, (b, w3)[i % 2]) for i, r in enumerate(clients)])
    status = await c.burst_done(w3, t(20))
    assert status["errors"] == [], status
    assert status["sent"] == n, status
    await c.broadcast(w3, "end")
    await wait_last(clients, "end", t(15))

    replayed = 0
    for r, new in zip(clients, sockets, strict=True):
        old = r.sockets[0]
        session = new.session
        assert session["resumed"] is True, f"{r!r} did not resume: {session}"
        assert session["missed"] == 0, f"{r!r}: {session}"
        got = numbers(r.data)
        assert got == list(range(n)), f"{r!r}: {sequence_problems(got, n)}"
        last = max(numbers(old.received), default=-1)
        replay = new.frames[: session["replayed"]]
        assert numbers(replay) == list(range(last + 1, last + 1 + len(replay))), (
            f"{r!r}: counted up to {last} on A, then the replay {replay}"
        )
        assert Counter(r.labels) == Counter(
            ["<ready>"] * 2 + [str(k) for k in range(n)] + ["end"]
        ), f"{r!r}: unexpected or doubled messages"
        replayed += int(session["replayed"])
    assert replayed > 0, "nothing was replayed: no message fell between the drain and a resume"
    await c.exited(a, t(10))
    no_errors_logged(c)
    print(f"\n[drain] 200 clients resumed; {replayed} messages replayed in all")


async def test_g_redis_restarted_empty_keeps_live_sockets_and_refuses_lost_sessions(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """Redis restarted without its data: the live sockets stay up and keep counting; a session
    that was detached before the restart gets session_unknown (a fresh session, no replay);
    a live socket that drops afterwards resumes with exactly the messages after its count."""
    c = await cluster(3, QUIET)
    a, b, w3 = c.workers
    live1 = await Resumer.connect(a, "live1", ["gg"])
    live2 = await Resumer.connect(b, "live2", ["gg"])
    gone = await Resumer.connect(w3, "gone", ["gg"])
    everyone = [live1, live2, gone]
    for r in everyone:
        await r.socket.ready()
    await gone.socket.command("set k v", {"set": "k"})
    for i in range(3):
        await c.publish(a, "gg", f"g{i}")
    await wait_last(everyone, "g2", t(3))
    gone.drop()
    await asyncio.sleep(t(0.3))
    await c.publish(b, "gg", "g3")
    await wait_last([live1, live2], "g3", t(3))
    gone_session = {**gone.socket.session, "client_id": "gone"}

    with redis_server.connect() as client:
        persistence = {**client.config_get("save"), **client.config_get("appendonly")}
    assert persistence == {"save": "", "appendonly": "no"}, (
        f"a restart would keep data: {persistence}"
    )
    await asyncio.to_thread(redis_server.restart)

    async def connected() -> None:
        for worker in c.workers:
            backend = await c.backend(worker)
            assert backend["state"] == "connected", (worker.name, backend)

    await eventually(connected, t(5 + 2), interval=0.1)
    probes = 0

    async def probed() -> None:
        nonlocal probes
        probes += 1
        with contextlib.suppress(AssertionError):  # a 503 while it reconnects: try again
            await c.publish(w3, "gg", f"probe {probes}")
        late = [r for r in (live1, live2) if not any(f.startswith("probe") for f in r.data)]
        assert not late, f"no probe yet at {late}"

    await eventually(probed, t(5), interval=0.2)
    assert live1.socket.open, live1.socket
    assert live2.socket.open, live2.socket
    after = [f"g{i}" for i in range(4, 7)]
    for message in after:
        await c.publish(w3, "gg", message)
    await wait_last([live1, live2], after[-1], t(3))

    live1.drop()
    await asyncio.sleep(t(0.3))
    away = ["g7", "g8"]
    for message in away:
        await c.publish(b, "gg", message)
    back = await live1.resume(w3)
    assert back.session["resumed"] is True, f"a live session after the restart: {back.session}"
    assert (back.session["replayed"], back.session["missed"]) == (2, 0), (
        f"want replayed 2 (g7, g8: sent while away), missed 0: {back.session}"
    )
    ready = await back.ready()  # after the replay
    assert back.frames[:2] == away, back.frames
    assert (ready["client_id"], ready["groups"]) == ("live1", ["gg"]), ready
    fresh = await gone.resume(a)
    await fresh_session(fresh, "session_unknown", gone_session)

    await c.broadcast(b, "end")
    await wait_last(everyone, "end", t(3))
    for r in (live1, live2):
        seen = [f for f in r.data if f.startswith("probe")]
        assert len(seen) == len(set(seen)), f"{r!r}: a probe twice: {seen}"
        rest = [x for x in r.labels if not x.startswith("probe")]
        want = ["<ready>", *(f"g{i}" for i in range(9)), "end"]
        if r is live1:
            want.insert(-1, "<ready>")
        assert rest == want, f"{r!r}: {rest}"
    for socket in (live2.socket, back, fresh):
        assert socket.open, f"closed: {socket!r}"
    assert gone.labels == ["<ready>", "end"], f"the refused session got more: {gone.labels}"
    no_errors_logged(c)
