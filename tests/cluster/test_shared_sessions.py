"""Sessions kept in Redis, driven in process: two hubs on one private Redis, sockets served
through the middleware with hand-written ``receive``/``send`` (the workers of test_resume.py
run the same over the wire)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from asgi_ws_stabilizer import ConnectionGoneError, Hub, StabilizerMiddleware
from asgi_ws_stabilizer.hub.handle import user_data_of

from ..flow.fakes import FakeSocket, Probe, finish, holding_app
from ..timing import t, until
from .redis_server import RedisServer
from .test_in_process import connected, hubs, started

__all__ = ["hubs"]  # the fixture (two hubs on the test's private Redis), used by name


class Client:
    """One opted-in socket served on a hub, and what it received."""

    def __init__(self, hub: Hub, query: str) -> None:
        self.probe = Probe()
        self.sock = FakeSocket(query=query)
        self.task = self.sock.serve(StabilizerMiddleware(holding_app(self.probe), hub=hub))
        self.hub = hub

    async def session(self) -> dict[str, Any]:
        await self.sock.accepted()
        frame = json.loads((await self.sock.next_sent())["text"])
        assert frame["$stabilizer"] == "session", frame
        return dict(frame)

    def data(self) -> list[str]:
        return [x for x in self.sock.sent_texts() if not x.startswith('{"$stabilizer"')]

    async def end(self) -> None:
        self.probe.release.set()
        self.sock.disconnect()
        await finish(self.task)


def resume_query(session: dict[str, Any], seq: int) -> str:
    return f"_stabilizer=1&_stabilizer_token={session['token']}&_stabilizer_seq={seq}"


async def test_resume_on_another_hub_replays_what_was_sent_while_away(
    hubs: Callable[..., Hub],
) -> None:
    """Messages on hub A, the client leaves, hub B publishes more; it resumes on B with the rest
    replayed once, in order, and its client id, user data and groups back."""
    a, b = hubs(), hubs()
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=alice")
    session = await first.session()
    (connection,) = list(a.registry)
    await a.handle(connection).join("room")
    user_data_of(connection)["name"] = "Alice"
    for i in range(5):
        await b.publish("room", f"m{i}")
    await until(lambda: len(first.data()) == 5, "5 on A", t(5))
    assert first.data() == [f"m{i}" for i in range(5)]
    await first.end()
    for i in range(5, 8):
        await a.publish("room", f"m{i}")
    second = Client(b, resume_query(session, 5))
    resumed = await second.session()
    assert (resumed["resumed"], resumed["replayed"], resumed["missed"]) == (True, 3, 0)
    await until(lambda: len(second.data()) == 3, "3 replayed", t(5))
    (again,) = list(b.registry)
    assert again.client_id == "alice"
    assert dict(again.user_data) == {"name": "Alice"}
    assert b.handle(again).groups == frozenset({"room"})
    assert (a.stats()["backend"]["sessions_served"], b.stats()["backend"]["sessions_served"]) == (
        0,
        1,
    )
    assert (b.handle(again).resumed, b.handle(again).replayed, b.handle(again).missed) == (
        True,
        3,
        0,
    )
    await a.publish("room", "after")
    await until(lambda: len(second.data()) == 4, "the new one", t(5))
    assert second.data() == ["m5", "m6", "m7", "after"]
    await second.end()


async def test_app_sends_and_hub_sends_share_one_numbering(hubs: Callable[..., Hub]) -> None:
    """The app's own sends on a resumable socket are numbered with the hub's: a resume with any
    count gets exactly the rest."""
    a, b = hubs(), hubs()
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=bob")
    session = await first.session()
    (connection,) = list(a.registry)
    sends = []
    for i in range(6):
        if i % 2:
            sends.append(b.send_to("bob", f"hub{i}"))
        else:
            await connection.send({"type": "websocket.send", "text": f"app{i}"})
    await asyncio.gather(*sends)
    await until(lambda: len(first.data()) == 6, "6 on A", t(5))
    got = first.data()
    await first.end()
    second = Client(b, resume_query(session, 2))
    resumed = await second.session()
    assert (resumed["replayed"], resumed["missed"]) == (4, 0)
    await until(lambda: len(second.data()) == 4, "4 replayed", t(5))
    assert second.data() == got[2:]
    await second.end()


async def test_one_token_resumes_once_across_hubs(hubs: Callable[..., Hub]) -> None:
    """The same token on two hubs at once: one resumes, the other gets token_spent and a fresh
    session with nothing of the old one."""
    a, b = hubs(), hubs()
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=carol")
    session = await first.session()
    (connection,) = list(a.registry)
    user_data_of(connection)["secret"] = 1
    await first.end()
    await asyncio.sleep(t(1.5))  # the user data is stored within a second
    one, two = Client(a, resume_query(session, 0)), Client(b, resume_query(session, 0))
    frames = await asyncio.gather(one.session(), two.session())
    assert sorted(f["resumed"] for f in frames) == [False, True]
    refused = one if not frames[0]["resumed"] else two
    (sock,) = list(refused.hub.registry)
    assert refused.hub.handle(sock).resume_reason == "token_spent"
    assert sock.client_id != "carol"
    assert dict(sock.user_data) == {}
    await one.end()
    await two.end()


async def test_missed_is_exact_with_a_small_buffer_across_hubs(hubs: Callable[..., Hub]) -> None:
    """50 messages of 100 bytes while away, a 1,000-byte buffer: the newest 10 are replayed and
    the 40 before them counted as missed; a second resume continues the numbering."""
    a, b = hubs(resume_buffer_size=1000), hubs(resume_buffer_size=1000)
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=dave")
    session = await first.session()
    await first.end()
    texts = [f"{i:03d}".ljust(100, "x") for i in range(50)]
    for text in texts:
        await b.send_to("dave", text)
    second = Client(b, resume_query(session, 0))
    resumed = await second.session()
    assert (resumed["replayed"], resumed["missed"]) == (10, 40)
    await until(lambda: len(second.data()) == 10, "10 replayed", t(5))
    assert second.data() == texts[40:]
    await second.end()
    await a.send_to("dave", "later")
    third = Client(a, resume_query(resumed, 10))
    again = await third.session()
    assert (again["replayed"], again["missed"]) == (1, 0)
    await until(lambda: third.data() == ["later"], "the one after", t(5))
    await third.end()


async def test_a_half_open_socket_on_the_other_hub_is_closed_4409(
    hubs: Callable[..., Hub],
) -> None:
    """The old socket still registered on A, the client resumes on B: A closes the old one with
    4409, and every message reaches the client once over the two sockets."""
    a, b = hubs(), hubs()
    await started(a, b)
    old = Client(a, "_stabilizer=1&client_id=erin")
    session = await old.session()
    for i in range(3):
        await b.send_to("erin", f"m{i}")
    await until(lambda: len(old.data()) == 3, "3 on A", t(5))
    new = Client(b, resume_query(session, 2))  # the third was lost in flight
    resumed = await new.session()
    assert (resumed["resumed"], resumed["replayed"]) == (True, 1)
    await until(lambda: [m.get("code") for m in old.sock.closes()] == [4409], "A closed 4409", t(1))
    await a.send_to("erin", "m3")
    await until(lambda: len(new.data()) == 2, "m2 replayed, m3 new", t(5))
    assert old.data()[:2] + new.data() == ["m0", "m1", "m2", "m3"]
    assert len(old.data()) == 3
    await old.end()
    await new.end()


async def test_user_data_is_stored_within_a_second(hubs: Callable[..., Hub]) -> None:
    """A change to user_data on a live socket reaches Redis within USER_DATA_EVERY: a resume
    elsewhere after the process was lost gets it."""
    a, b = hubs(), hubs()
    await started(a, b)
    first = Client(a, "_stabilizer=1&client_id=fay")
    session = await first.session()
    (connection,) = list(a.registry)
    user_data_of(connection)["step"] = 1
    await asyncio.sleep(t(1.5))
    user_data_of(connection)["step"] = 2
    await asyncio.sleep(t(1.5))
    # The socket is still served on A (as if A were killed): B takes the session over.
    second = Client(b, resume_query(session, 0))
    await second.session()
    (taken,) = list(b.registry)
    assert dict(taken.user_data) == {"step": 2}
    await first.end()
    await second.end()


async def test_a_redis_restart_keeps_live_sockets_counting(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Redis restarts with its data gone: a live socket keeps its numbering (a resume after it
    replays exactly what came after its count); a session only Redis knew is unknown."""
    a, b = hubs(), hubs()
    await started(a, b)
    away = Client(a, "_stabilizer=1&client_id=gone")
    away_session = await away.session()
    await away.end()
    live = Client(a, "_stabilizer=1&client_id=gus")
    session = await live.session()
    for i in range(3):
        await b.send_to("gus", f"m{i}")
    await until(lambda: len(live.data()) == 3, "3 before", t(5))
    redis_server.restart()
    await until(lambda: a.stats()["backend"]["reconnects"] >= 1, "A reconnected", t(10))
    await until(lambda: b.stats()["backend"]["reconnects"] >= 1, "B reconnected", t(10))
    await connected(a, b)
    for i in range(3, 5):
        await b.send_to("gus", f"m{i}")
    await until(lambda: len(live.data()) == 5, "2 after", t(5))
    assert live.data() == [f"m{i}" for i in range(5)]
    await live.end()
    await b.send_to("gus", "m5")
    again = Client(b, resume_query(session, 4))
    resumed = await again.session()
    assert (resumed["resumed"], resumed["replayed"], resumed["missed"]) == (True, 2, 0)
    await until(lambda: again.data() == ["m4", "m5"], "m4 and m5, once", t(5))
    await again.end()
    unknown = Client(b, resume_query(away_session, 0))
    refused = await unknown.session()
    assert refused["resumed"] is False
    (sock,) = (c for c in b.registry if c.client_id != "gus")
    assert b.handle(sock).resume_reason == "session_unknown"
    await unknown.end()


async def test_an_app_send_after_the_close_raises_as_in_one_process(
    hubs: Callable[..., Hub],
) -> None:
    """The app's send on a resumable socket that was closed raises ``ConnectionGoneError`` (it
    does not go on filling the session's log)."""
    a = hubs()
    await a.start()
    await connected(a)
    client = Client(a, "_stabilizer=1&client_id=hal")
    await client.session()
    (connection,) = list(a.registry)
    await a.close("hal", 4000, "bye")
    await until(lambda: connection.gate.close_code is not None, "closed", t(5))
    with pytest.raises(ConnectionGoneError):
        await connection.send({"type": "websocket.send", "text": "too late"})
    await client.end()


async def test_a_served_session_outlives_a_short_session_ttl(hubs: Callable[..., Hub]) -> None:
    """With ``session_ttl`` shorter than the presence refresh, a connected resumable socket's
    session is kept alive by its process: every message of five seconds reaches it."""
    a = hubs(session_ttl=0.2)
    await a.start()
    await connected(a)
    client = Client(a, "_stabilizer=1&client_id=ivy")
    await client.session()
    for i in range(6):
        await a.send_to("ivy", f"m{i}")
        await asyncio.sleep(t(1))
    await until(lambda: len(client.data()) == 6, "all six", t(5))
    await client.end()
