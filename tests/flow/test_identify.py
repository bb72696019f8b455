"""Identity from the app: ``handle.identify()`` files a socket under the id the app chose."""

from __future__ import annotations

import json

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from asgi_ws_stabilizer import (
    ConnectionGoneError,
    Hub,
    InvalidClientIdError,
    StabilizerMiddleware,
)

from ..timing import until
from .fakes import FakeSocket, Probe, finish, holding_app


def identifying_app(probe: Probe, client_id: str, *, before_accept: bool = True) -> ASGIApp:
    """Identify as ``client_id`` before (or right after) accepting, then hold."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        handle = scope["state"]["stabilizer"]
        await receive()
        try:
            if before_accept:
                await handle.identify(client_id)
            await send({"type": "websocket.accept"})
            if not before_accept:
                await handle.identify(client_id)
        except (ConnectionGoneError, InvalidClientIdError) as exc:
            probe.received.append({"type": "error", "error": type(exc).__name__})
            raise
        await probe.release.wait()

    return app


@pytest.mark.parametrize("before_accept", [True, False])
async def test_identified_socket_is_reached_by_its_id(before_accept: bool) -> None:
    """After ``identify`` the socket counts under the app's id for send_to, client_ids,
    groups and close; the id it had before is gone."""
    hub = Hub(heartbeat_interval=None)
    probe = Probe()
    mw = StabilizerMiddleware(
        identifying_app(probe, "user123", before_accept=before_accept), hub=hub
    )
    sock = FakeSocket(query="client_id=anonymous")
    task = sock.serve(mw)
    await sock.accepted()
    await until(lambda: hub.client_ids() == ["user123"], "the socket is filed as user123")
    (connection,) = list(hub.registry)
    assert hub.handle(connection).client_id == "user123"
    await hub.handle(connection).join("room")
    assert hub.group_members("room") == ["user123"]
    assert await hub.send_to("user123", "hello") == 1
    assert await hub.send_to("anonymous", "lost") == 0
    assert (await sock.next_sent())["text"] == "hello"
    assert await hub.close("user123", 4000, "bye") == 1
    await until(lambda: bool(sock.closes()), "the close went out")
    assert sock.closes()[-1]["code"] == 4000
    probe.release.set()
    await finish(task)
    assert hub.connection_count == 0


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "\x1b[2K", "ü", "a/b"])
async def test_bad_id_is_refused_and_nothing_changes(bad: str) -> None:
    """A malformed id raises ``InvalidClientIdError`` with the rule, and the socket keeps its id."""
    hub = Hub(heartbeat_interval=None)
    probe = Probe()
    sock = FakeSocket(query="client_id=alice")
    task = sock.serve(StabilizerMiddleware(holding_app(probe), hub=hub))
    await sock.accepted()
    (connection,) = list(hub.registry)
    with pytest.raises(InvalidClientIdError, match="1-128 characters"):
        await hub.handle(connection).identify(bad)
    assert hub.client_ids() == ["alice"]
    sock.disconnect()
    probe.release.set()
    await finish(task)


async def test_over_the_client_limit_before_accept_is_refused_429() -> None:
    """Identifying as an id that already has ``max_connections_per_client`` sockets refuses the
    handshake with 429 ``client_limit`` (the app's accept never happens)."""
    hub = Hub(heartbeat_interval=None, max_connections_per_client=1)
    probe = Probe()
    mw = StabilizerMiddleware(identifying_app(probe, "bob"), hub=hub)
    first = FakeSocket()
    task = first.serve(mw)
    await first.accepted()
    second = FakeSocket()
    await finish(second.serve(mw))
    start = second.sent[0]
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 429
    assert (b"x-stabilizer-reason", b"client_limit") in start["headers"]
    assert not any(m["type"] == "websocket.accept" for m in second.sent)
    assert probe.received == [{"type": "error", "error": "ConnectionGoneError"}]
    assert hub.connection_count == 1
    assert hub.stats()["rejected"] == {"client_limit": 1}
    first.disconnect()
    probe.release.set()
    await finish(task)


async def test_over_the_client_limit_after_accept_is_closed_1008() -> None:
    """Identifying an accepted socket as an id at its limit closes it 1008 with the reason."""
    hub = Hub(heartbeat_interval=None, max_connections_per_client=1)
    probe = Probe()
    holder = Probe()
    first = FakeSocket(query="client_id=bob")
    task = first.serve(StabilizerMiddleware(holding_app(holder), hub=hub))
    await first.accepted()
    late = FakeSocket()
    await finish(
        late.serve(
            StabilizerMiddleware(identifying_app(probe, "bob", before_accept=False), hub=hub)
        )
    )
    assert late.closes() == [
        {
            "type": "websocket.close",
            "code": 1008,
            "reason": "too many connections for this client id",
        }
    ]
    assert hub.client_ids() == ["bob"]
    assert hub.connection_count == 1
    first.disconnect()
    holder.release.set()
    await finish(task)


async def test_identity_travels_with_the_session() -> None:
    """An identified, resumable socket's session carries the id: messages to it wait while the
    client is away, and a resume brings the id back (the token made before still works)."""
    hub = Hub(heartbeat_interval=None, secret_key="i" * 32)
    probe = Probe()
    mw = StabilizerMiddleware(identifying_app(probe, "carol", before_accept=False), hub=hub)
    sock = FakeSocket(query="_stabilizer=1")
    task = sock.serve(mw)
    await sock.accepted()
    token = json.loads((await sock.next_sent())["text"])["token"]  # made before identify
    await until(lambda: hub.client_ids() == ["carol"], "identified")
    sock.disconnect()
    await until(lambda: hub.connection_count == 0, "the client left")
    assert await hub.send_to("carol", "while away") == 0
    again = FakeSocket(query=f"_stabilizer=1&_stabilizer_token={token}&_stabilizer_seq=0")
    task2 = again.serve(StabilizerMiddleware(holding_app(probe), hub=hub))
    await again.accepted()
    frame = json.loads((await again.next_sent())["text"])
    assert frame["resumed"] is True
    assert (await again.next_sent())["text"] == "while away"
    assert hub.client_ids() == ["carol"]
    again.disconnect()
    probe.release.set()
    await finish(task)
    await finish(task2)
