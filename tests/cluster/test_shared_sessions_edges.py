"""Sessions kept in Redis, the edges: a half-open socket on the same process, a group left,
binary frames, numbering out of step, an outage at connect, and a session taken over while its
process was away from Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

import redis.asyncio

from asgi_ws_stabilizer import Hub
from asgi_ws_stabilizer.backends.redis_sessions import RedisSessions
from asgi_ws_stabilizer.backends.shared import Held
from asgi_ws_stabilizer.core.messages import Frame, encode
from asgi_ws_stabilizer.hub.handle import user_data_of

from ..flow.test_hub import refusal
from ..timing import t, until
from .redis_server import RedisServer
from .test_in_process import connected, started
from .test_shared_sessions import Client, hubs, resume_query

__all__ = ["hubs"]  # the fixture, used by name


def closes(client: Client) -> list[int | None]:
    return [m.get("code") for m in client.sock.closes()]


async def test_a_half_open_socket_on_the_same_process_hands_over_its_fresher_data(
    hubs: Callable[..., Hub],
) -> None:
    """The old socket is still registered where the resume lands: it is closed 4409 and its
    user data and groups (fresher than Redis's copy) go to the new socket."""
    a = hubs()
    await a.start()
    await connected(a)
    old = Client(a, "_stabilizer=1&client_id=jo")
    session = await old.session()
    (first,) = list(a.registry)
    await a.handle(first).join("room")
    user_data_of(first)["fresh"] = True  # not stored yet: the next check is a second away
    new = Client(a, resume_query(session, 0))
    resumed = await new.session()
    assert resumed["resumed"] is True
    await until(lambda: closes(old) == [4409], "the old socket closed 4409", t(1))
    (second,) = (c for c in a.registry if c is not first)
    assert dict(second.user_data) == {"fresh": True}
    assert a.handle(second).groups == frozenset({"room"})
    await a.publish("room", "to the new one")
    await until(lambda: new.data() == ["to the new one"], "the new socket gets it", t(5))
    await old.end()
    await new.end()


async def test_a_left_group_stops_reaching_the_session(hubs: Callable[..., Hub]) -> None:
    """Leaving a group leaves it in Redis too: a later group send is neither delivered nor
    kept for the replay; binary frames are replayed as bytes."""
    a, b = hubs(), hubs()
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=kim")
    session = await first.session()
    (connection,) = list(a.registry)
    handle = a.handle(connection)
    await handle.join("room")
    await handle.leave("room")
    await a.send_to("kim", b"\x00\x01")  # in order after the leave (one writer)
    await until(lambda: len(first.sock.sent) >= 3, "the binary frame", t(5))
    await first.end()
    await b.publish("room", "not for kim")
    await b.send_to("kim", b"\x02")
    second = Client(b, resume_query(session, 0))
    resumed = await second.session()
    assert (resumed["replayed"], resumed["missed"]) == (2, 0)
    await until(lambda: len(second.sock.sent) >= 4, "the replay", t(5))
    replayed = [m.get("bytes") for m in second.sock.sent[2:4]]
    assert replayed == [b"\x00\x01", b"\x02"]
    (again,) = list(b.registry)
    assert b.handle(again).groups == frozenset()
    await second.end()


async def test_numbers_out_of_step_close_the_socket_1013(hubs: Callable[..., Hub]) -> None:
    """A message numbered past the next one (something in between never came) closes the
    socket 1013, so that its client resumes and gets the rest from the log; one it already
    has is skipped."""
    a = hubs()
    await a.start()
    await connected(a)
    client = Client(a, "_stabilizer=1&client_id=lou")
    session = await client.session()
    await a.send_to("lou", "one")
    await until(lambda: client.data() == ["one"], "the first", t(5))
    binder = a.sessions
    binder_deliver = binder.deliver  # type: ignore[attr-defined]
    binder_deliver(encode("again"), [(session["session_id"], 1)])
    assert client.data() == ["one"]  # already had it
    binder_deliver(encode("three"), [(session["session_id"], 3)])
    await until(lambda: closes(client) == [1013], "closed 1013", t(5))
    assert client.data() == ["one"]
    await client.end()


async def test_a_resumable_socket_is_refused_503_while_redis_is_away(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Without Redis a session can be neither found nor made: 503 ``backend_unavailable``
    with Retry-After; a plain socket is still admitted."""
    a = hubs()
    await a.start()
    await connected(a)
    redis_server.stop()
    await until(lambda: a.stats()["backend"]["state"] == "reconnecting", "noticed", t(10))
    refused = Client(a, "_stabilizer=1&client_id=max")
    await asyncio.wait_for(refused.task, t(5))
    status, reason, retry_after = refusal(refused.sock)
    assert (status, reason) == (503, "backend_unavailable")
    assert retry_after is not None
    plain = Client(a, "client_id=ned")
    await plain.sock.accepted()
    assert a.connection_count == 1
    await plain.end()
    redis_server.start()


class Host:
    """A ``SessionHost`` that serves given sessions and records what it is told."""

    def __init__(self, held: list[Held]) -> None:
        self._held = held
        self.lost_ids: list[str] = []

    def session_of(self, connection_id: str) -> str | None:
        return None

    def held(self) -> list[Held]:
        return self._held

    def served(self) -> int:
        return len(self._held)

    def lost(self, session_ids: Sequence[str]) -> None:
        self.lost_ids += session_ids

    def deliver(self, frame: Frame, listed: Sequence[tuple[str, int]]) -> None:
        pass


async def test_a_session_taken_over_while_away_is_reported_lost(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """After a reconnect a process writes its sessions again: one that another socket took
    over meanwhile is not written but reported (its socket here is closed 4409); one Redis no
    longer has is made again, numbered from its socket."""
    a = hubs()
    await a.start()
    await connected(a)
    shared = a.backend.shared_sessions
    assert isinstance(shared, RedisSessions)
    await shared.create("taken", "c1", "elsewhere")
    host = Host(
        [
            Held("taken", "c1", "here", 4, 0, "{}", ()),
            Held("gone", "c2", "here2", 7, 1, '{"k":1}', ("g",)),
        ]
    )
    shared.host(host)
    client = redis.asyncio.from_url(redis_server.url)
    try:
        assert await shared.restore(client) == {}  # nothing on the bus for "gone"
        assert host.lost_ids == ["taken"]
        made = await client.hgetall("inproc:s:gone")
        assert made[b"sent"] == b"7"
        assert made[b"first"] == b"8"
        assert made[b"off"] == b"1"
        assert made[b"ud"] == b'{"k":1}'
        assert await client.smembers("inproc:sg:g") == {b"gone"}
    finally:
        await client.aclose()


async def test_sends_made_while_redis_did_not_know_a_session_are_caught_up(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Redis restarts without its data while one process is away from it; another process
    sends to that process's resumable client meanwhile. When the process comes back it makes
    the session again and catches up: the socket gets the message, numbered on, and a resume
    elsewhere afterwards replays exactly what came after its count."""
    a, b = hubs(), hubs()
    await started(a, b)
    client = Client(a, "_stabilizer=1&client_id=kid")
    session = await client.session()
    await b.send_to("kid", "m0")
    await until(lambda: client.data() == ["m0"], "m0", t(5))
    await a.backend.aclose()
    redis_server.restart()
    await until(lambda: b.stats()["backend"]["reconnects"] >= 1, "B reconnected", t(10))
    await connected(b)
    await b.send_to("kid", "while A was away")
    await b.broadcast("to all")
    await a.backend.start()
    await connected(a)
    await until(lambda: len(client.data()) == 3, "caught up", t(5))
    assert client.data() == ["m0", "while A was away", "to all"]
    await b.send_to("kid", "after")
    await until(lambda: len(client.data()) == 4, "after", t(5))
    await client.end()
    again = Client(b, resume_query(session, 2))
    resumed = await again.session()
    assert (resumed["resumed"], resumed["replayed"], resumed["missed"]) == (True, 2, 0)
    await until(lambda: len(again.data()) == 2, "the replay", t(5))
    assert again.data() == ["to all", "after"]
    await again.end()


async def test_a_drain_stores_user_data_before_it_tells_clients_to_go(
    hubs: Callable[..., Hub],
) -> None:
    """A change to user_data just before a drain is in Redis by the time the drain frame goes
    out (no waiting for the periodic check): the client resumes elsewhere with it."""
    a, b = hubs(), hubs()
    await started(a, b)
    client = Client(a, "_stabilizer=1&client_id=ola")
    await client.session()
    (connection,) = list(a.registry)
    user_data_of(connection)["cart"] = [1, 2]
    draining = asyncio.create_task(a.drain(timeout=t(2), spread=0))

    def drain_frame() -> str | None:
        return next((x for x in client.sock.sent_texts() if '"drain"' in x), None)

    await until(lambda: drain_frame() is not None, "the drain frame", t(5))
    token = json.loads(drain_frame() or "{}")["token"]
    # At once, while the socket on A may still be closing (its own save has not run yet).
    again = Client(b, f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq=0")
    resumed = await again.session()
    assert resumed["resumed"] is True
    assert (await draining).notified == 1
    (taken,) = list(b.registry)
    assert dict(taken.user_data) == {"cart": [1, 2]}
    await client.end()
    await again.end()


async def test_user_data_that_cannot_be_stored_keeps_the_last_stored(
    hubs: Callable[..., Hub],
) -> None:
    """A value JSON cannot hold is stored as its str(); a circular reference cannot be stored
    at all: the last stored data stays, the socket is told once in the log, and the hub's
    periodic save goes on for the others."""
    a, b = hubs(), hubs()
    await started(a, b)
    odd = Client(a, "_stabilizer=1&client_id=pat")
    odd_session = await odd.session()
    fine = Client(a, "_stabilizer=1&client_id=quinn")
    fine_session = await fine.session()
    by_client = {c.client_id: c for c in a.registry}
    user_data_of(by_client["pat"])["when"] = {1, 2}  # a set: stored as its str()
    await asyncio.sleep(t(1.5))
    loop: dict[str, object] = {}
    loop["self"] = loop
    user_data_of(by_client["pat"])["loop"] = loop
    user_data_of(by_client["quinn"])["n"] = 1
    await asyncio.sleep(t(1.5))
    await odd.end()
    await fine.end()
    again = Client(b, resume_query(odd_session, 0))
    await again.session()
    other = Client(b, resume_query(fine_session, 0))
    await other.session()
    restored = {c.client_id: dict(c.user_data) for c in b.registry}
    assert restored == {"pat": {"when": "{1, 2}"}, "quinn": {"n": 1}}
    await again.end()
    await other.end()
