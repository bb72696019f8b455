"""Resuming through the middleware restores the client id, user data and groups."""

from __future__ import annotations

import json

import pytest

from asgi_ws_stabilizer import Hub, StabilizerMiddleware, StateError

from .fakes import FakeSocket, Probe, finish, holding_app, until


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
    connection.user_data["name"] = "Alice"
    await connection.handle.join("room")
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
    assert again.handle.groups == frozenset({"room"})
    assert hub.group_members("room") == ["alice"]
    assert again.handle.resumed is True
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
    assert connection.handle.resumable is False
    with pytest.raises(StateError, match="_stabilizer=1"):
        connection.handle.resume_token()
    sock.disconnect()
    probe.release.set()
    await finish(task)
