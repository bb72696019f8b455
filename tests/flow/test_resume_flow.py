"""Resuming through the middleware restores the client id, user data and groups."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_ws_stabilizer import Hub, StabilizerMiddleware, StateError
from asgi_ws_stabilizer.hub.handle import user_data_of

from ..timing import until
from .fakes import FakeSocket, Probe, finish, holding_app


async def test_resume_restores_client_id_user_data_and_groups() -> None:
    """A resumed session has its client id, user_data and groups back without the app."""
    hub = Hub(heartbeat_interval=None, secret_key="r" * 32)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    first = FakeSocket(query="_stabilizer=1&client_id=alice")
    task = first.serve(mw)
    await first.accepted()
    session = json.loads((await first.next_sent())["text"])
    (connection,) = list(hub.registry)
    user_data_of(connection)["name"] = "Alice"
    await hub.handle(connection).join("room")
    first.disconnect()
    await until(lambda: hub.connection_count == 0, "the first socket is gone")
    await hub.publish("room", "while away")  # kept for the session

    query = f"_stabilizer=1&_stabilizer_token={session['token']}&_stabilizer_seq=0"
    second = FakeSocket(query=query)
    task2 = second.serve(mw)
    await second.accepted()
    resumed = json.loads((await second.next_sent())["text"])
    assert resumed["resumed"] is True
    assert resumed["replayed"] == 1
    assert (await second.next_sent())["text"] == "while away"
    (again,) = list(hub.registry)
    assert again.client_id == "alice"
    assert dict(again.user_data) == {"name": "Alice"}
    assert hub.handle(again).groups == frozenset({"room"})
    assert hub.group_members("room") == ["alice"]
    assert hub.handle(again).resumed is True
    second.disconnect()
    probe.release.set()
    await finish(task)
    await finish(task2)


async def test_plain_socket_has_no_session() -> None:
    """Without _stabilizer=1 there is no session, and resume_token() says why."""
    hub = Hub(heartbeat_interval=None)
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(holding_app(probe), hub=hub))
    await sock.accepted()
    (connection,) = list(hub.registry)
    assert hub.handle(connection).resumable is False
    with pytest.raises(StateError, match="_stabilizer=1"):
        hub.handle(connection).resume_token()
    sock.disconnect()
    probe.release.set()
    await finish(task)


SECRET = "r" * 32


async def session_of(sock: FakeSocket) -> dict[str, Any]:
    """The session control frame, the first thing an opted-in socket is sent after accept."""
    await sock.accepted()
    frame = json.loads((await sock.next_sent())["text"])
    assert frame["$stabilizer"] == "session"
    return dict(frame)


def resume_query(token: str, seq: int | str, extra: str = "") -> str:
    return f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq={seq}{extra}"


def gated_app(probe: Probe, gate: asyncio.Event) -> ASGIApp:
    """Wait for ``gate`` before accepting (an app that checks something first), then hold."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        await receive()
        await gate.wait()
        await send({"type": "websocket.accept"})
        await probe.release.wait()

    return app


async def test_spent_token_confers_nothing_of_the_session() -> None:
    """A spent token gets a fresh session under the handshake's own identity: not the
    session's client id, data or groups, and none of its client's messages."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    owner = FakeSocket(query="_stabilizer=1&client_id=owner")
    tasks = [owner.serve(mw)]
    token = (await session_of(owner))["token"]
    (first,) = list(hub.registry)
    user_data_of(first)["secret"] = "x"
    await hub.handle(first).join("private")
    resumed = FakeSocket(query=resume_query(token, 0))
    tasks.append(resumed.serve(mw))
    assert (await session_of(resumed))["resumed"] is True  # spends the token
    replayer = FakeSocket(query=resume_query(token, 0))
    tasks.append(replayer.serve(mw))
    frame = await session_of(replayer)
    (third,) = [c for c in hub.registry if c.session_id == frame["session_id"]]
    assert frame["resumed"] is False
    assert hub.handle(third).resume_reason == "token_spent"
    assert third.client_id != "owner"
    assert dict(third.user_data) == {}
    assert hub.handle(third).groups == frozenset()
    assert await hub.send_to("owner", "for the owner only") == 1
    assert "for the owner only" not in replayer.sent_texts()
    named = FakeSocket(query=resume_query(token, 0, "&client_id=bob"))
    tasks.append(named.serve(mw))
    await session_of(named)
    assert sorted(hub.client_ids()) == sorted(["owner", "bob", third.client_id])
    for sock in (owner, resumed, replayer, named):
        sock.disconnect()
    probe.release.set()
    for task in tasks:
        await finish(task)


async def test_token_of_a_forgotten_session_confers_nothing() -> None:
    """A genuine token whose session has expired gets a fresh session with its own id."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    owner = FakeSocket(query="_stabilizer=1&client_id=owner")
    task = owner.serve(mw)
    token = (await session_of(owner))["token"]
    owner.disconnect()
    await until(lambda: hub.connection_count == 0, "the owner left")
    assert hub.resumption.store.expire(time.time() + 3600) == 1
    again = FakeSocket(query=resume_query(token, 0))
    task2 = again.serve(mw)
    frame = await session_of(again)
    (connection,) = list(hub.registry)
    assert frame["resumed"] is False
    assert hub.handle(connection).resume_reason == "session_unknown"
    assert connection.client_id != "owner"
    again.disconnect()
    probe.release.set()
    await finish(task)
    await finish(task2)


async def test_seq_ahead_of_what_was_sent_is_refused() -> None:
    """A seq larger than what the session sent gets a fresh session (``seq_ahead``), the
    token stays good, and a later honest resume is exact."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, resume_buffer_size=10)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    owner = FakeSocket(query="_stabilizer=1&client_id=owner")
    task = owner.serve(mw)
    token = (await session_of(owner))["token"]
    for i in range(3):
        await hub.send_to("owner", f"m{i}")  # 2 bytes each
    owner.disconnect()
    await until(lambda: hub.connection_count == 0, "the owner left")
    liar = FakeSocket(query=resume_query(token, 8))
    tasks = [liar.serve(mw)]
    frame = await session_of(liar)
    (connection,) = list(hub.registry)
    assert frame["resumed"] is False
    assert hub.handle(connection).resume_reason == "seq_ahead"
    assert connection.client_id != "owner"
    for i in range(3, 9):
        await hub.send_to("owner", f"m{i}")  # away: kept, the oldest dropped past 10 bytes
    honest = FakeSocket(query=resume_query(token, 1))
    tasks.append(honest.serve(mw))
    frame = await session_of(honest)
    assert frame["resumed"] is True
    assert frame["replayed"] == 5
    assert frame["missed"] == 3  # m1, m2, m3 were dropped from the 10-byte buffer
    assert [(await honest.next_sent())["text"] for _ in range(5)] == [f"m{i}" for i in range(4, 9)]
    for sock in (liar, honest):
        sock.disconnect()
    probe.release.set()
    await finish(task)
    for other in tasks:
        await finish(other)


@pytest.mark.parametrize("seq", ["²", "٣", "9" * 5000, "-1", "+5", " 5", "1e3", "", "0x10"])
async def test_malformed_seq_is_refused_400_and_frees_its_slot(seq: str) -> None:
    """A malformed ``_stabilizer_seq`` is refused 400 ``bad_resume_seq`` before the app runs,
    with or without a token, and leaves no registry slot behind."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, max_connections=1)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    for token in ("", "&_stabilizer_token=abc.def"):
        sock = FakeSocket(query=f"_stabilizer=1&_stabilizer_seq={quote(seq)}{token}")
        await finish(sock.serve(mw))
        start = sock.sent[0]
        assert start["type"] == "websocket.http.response.start"
        assert start["status"] == 400
        assert (b"x-stabilizer-reason", b"bad_resume_seq") in start["headers"]
        assert hub.connection_count == 0
    assert probe.calls == 0


async def test_a_failing_handshake_frees_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails between admission and the app, the registry slot is given back."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, max_connections=1)

    def broken(*args: object) -> None:
        raise RuntimeError("bind failed")

    monkeypatch.setattr(hub.sessions, "bind", broken)
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="bind failed"):
            await finish(FakeSocket(query="_stabilizer=1").serve(mw))
        assert hub.connection_count == 0
    honest = FakeSocket()
    task = honest.serve(mw)
    await honest.accepted()
    honest.disconnect()
    probe.release.set()
    await finish(task)


async def test_messages_while_the_resuming_socket_connects_are_replayed() -> None:
    """Hub sends that arrive after a resume's handshake but before the app accepts wait in
    the session and are replayed, once and in order, before anything newer."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET)
    probe = Probe()
    gate = asyncio.Event()
    gate.set()
    mw = StabilizerMiddleware(gated_app(probe, gate), hub=hub)
    owner = FakeSocket(query="_stabilizer=1&client_id=owner")
    task = owner.serve(mw)
    token = (await session_of(owner))["token"]
    (first,) = list(hub.registry)
    await hub.handle(first).join("room")
    owner.disconnect()
    await until(lambda: hub.connection_count == 0, "the owner left")
    await hub.publish("room", "away")
    gate.clear()
    again = FakeSocket(query=resume_query(token, 0))
    task2 = again.serve(mw)
    await until(lambda: hub.connection_count == 1, "the resume was admitted")
    await hub.publish("room", "connecting")
    await hub.send_to("owner", "direct")
    await hub.broadcast("everyone")
    gate.set()
    frame = await session_of(again)
    await hub.publish("room", "live")
    texts = [(await again.next_sent())["text"] for _ in range(5)]
    assert frame["replayed"] == 4
    assert texts == ["away", "connecting", "direct", "everyone", "live"]
    again.disconnect()
    probe.release.set()
    await finish(task)
    await finish(task2)


async def test_resume_over_a_half_open_socket_delivers_each_message_once() -> None:
    """Resuming while the old socket is still registered: the old one is closed 4409 and
    gets nothing more, the new one gets the old one's groups and data, and every hub send,
    also those made while it connects, exactly once."""
    hub = Hub(heartbeat_interval=None, secret_key=SECRET, max_connections_per_client=1)
    probe = Probe()
    gate = asyncio.Event()
    gate.set()
    mw = StabilizerMiddleware(gated_app(probe, gate), hub=hub)
    old_sock = FakeSocket(query="_stabilizer=1&client_id=owner")
    task = old_sock.serve(mw)
    token = (await session_of(old_sock))["token"]
    (old,) = list(hub.registry)
    await hub.handle(old).join("room")
    user_data_of(old)["k"] = "v"
    await hub.publish("room", "before")
    assert (await old_sock.next_sent())["text"] == "before"
    gate.clear()
    new_sock = FakeSocket(query=resume_query(token, 1))
    task2 = new_sock.serve(mw)
    await until(lambda: old.close_code == 4409, "the old socket was replaced")
    await hub.publish("room", "connecting")
    gate.set()
    frame = await session_of(new_sock)
    for i in range(3):
        result = await hub.publish("room", f"live{i}")
        assert result.targeted == 1
    assert await hub.send_to("owner", "direct") == 1
    texts = [(await new_sock.next_sent())["text"] for _ in range(5)]
    assert frame["resumed"] is True
    assert frame["replayed"] == 1
    assert texts == ["connecting", "live0", "live1", "live2", "direct"]
    (new,) = [c for c in hub.registry if c is not old]
    assert dict(new.user_data) == {"k": "v"}
    assert hub.handle(new).groups == frozenset({"room"})
    assert [m.get("text") for m in old_sock.sent if m["type"] == "websocket.send"][-1] == "before"
    assert old_sock.closes()[-1]["code"] == 4409
    for sock in (old_sock, new_sock):
        sock.disconnect()
    probe.release.set()
    await finish(task)
    await finish(task2)
