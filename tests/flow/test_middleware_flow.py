"""StabilizerMiddleware driven by hand: admission, message flow, close codes, lifespan, http."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from structlog.testing import capture_logs

from asgi_ws_stabilizer import (
    ConnectionGoneError,
    ConnectionHandle,
    Hub,
    SettingsError,
    StabilizerMiddleware,
)
from asgi_ws_stabilizer.aio.connection import NO_HEARTBEAT, Connection

from ..timing import WAIT, turns, until
from .fakes import FakeSocket, Probe, echo_app, finish, holding_app, record_app


def only_connection(hub: Hub) -> Connection:
    (connection,) = list(hub.registry)
    return connection


def handle_of(probe: Probe) -> ConnectionHandle:
    assert probe.scope is not None
    handle = probe.scope["state"]["stabilizer"]
    assert isinstance(handle, ConnectionHandle)
    return handle


def accept_and_return(probe: Probe) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})

    return app


def accept_and_raise(probe: Probe) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        raise ValueError("boom")

    return app


def receive_once(probe: Probe) -> ASGIApp:
    """Accept, record the next message and return."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        probe.received.append(await receive())

    return app


# -- admission ---------------------------------------------------------------------------


async def test_refusal_with_denial_response() -> None:
    """A refused handshake gets an HTTP 503 with Retry-After and a body; the app is never called."""
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), max_connections=1, retry_after=7)
    first = FakeSocket()
    first_task = first.serve(mw)
    await first.accepted()
    refused = FakeSocket()
    await finish(refused.serve(mw))
    start, body = refused.sent
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"7"
    assert headers[b"x-stabilizer-reason"] == b"server_full"
    assert headers[b"content-type"].startswith(b"text/plain")
    assert body == {
        "type": "websocket.http.response.body",
        "body": b"server is at its connection limit",
        "more_body": False,
    }
    assert probe.calls == 1
    assert refused.receive_calls == 1  # only the connect: never receive() after a denial
    probe.release.set()
    await finish(first_task)


async def test_refusal_without_denial_response_closes_before_accept() -> None:
    """Without the denial extension a refusal is a ``websocket.close`` before accept."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe))
    sock = FakeSocket(headers=[("origin", "https://evil.example")], denial_response=False)
    await finish(sock.serve(mw))
    assert [m["type"] for m in sock.sent] == ["websocket.close"]
    assert probe.calls == 0
    assert mw.hub.connection_count == 0
    assert mw.hub.stats()["rejected"] == {"origin_not_allowed": 1}


async def test_same_origin_admitted() -> None:
    """A browser handshake from the server's own origin is admitted."""
    probe = Probe()
    mw = StabilizerMiddleware(accept_and_return(probe))
    sock = FakeSocket(headers=[("origin", "http://testserver")])
    await finish(sock.serve(mw))
    assert probe.calls == 1
    assert sock.sent[0]["type"] == "websocket.accept"


async def test_malformed_client_id_refused_400() -> None:
    """A malformed client id is refused with 400 before the app runs."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe))
    sock = FakeSocket(query="client_id=%3Cscript%3E")
    await finish(sock.serve(mw))
    assert sock.sent[0]["status"] == 400
    assert probe.calls == 0


async def test_peer_gone_before_connect() -> None:
    """If the first event is not ``websocket.connect`` the app is not called and nothing is sent."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe))
    sock = FakeSocket()
    sock.inbound.get_nowait()
    sock.disconnect(1006)
    await finish(sock.serve(mw))
    assert probe.calls == 0
    assert sock.sent == []


# -- closes on the app's behalf -------------------------------------------------------------


async def test_app_returns_after_accept_closes_1000() -> None:
    """An app that returns without closing gets a 1000 close sent for it."""
    probe = Probe()
    mw = StabilizerMiddleware(accept_and_return(probe))
    sock = FakeSocket()
    await finish(sock.serve(mw))
    assert sock.sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 1000, "reason": ""},
    ]
    assert mw.hub.connection_count == 0
    assert handle_of(probe).state == "closed"


async def test_app_raises_after_accept_closes_1011_logs_and_reraises() -> None:
    """An app error after accept sends 1011, logs ``app_exception`` and propagates."""
    probe = Probe()
    mw = StabilizerMiddleware(accept_and_raise(probe))
    sock = FakeSocket()
    with capture_logs() as logs, pytest.raises(ValueError, match="boom"):
        await finish(sock.serve(mw))
    assert sock.closes() == [{"type": "websocket.close", "code": 1011, "reason": "internal error"}]
    (event,) = [e for e in logs if e["event"] == "app_exception"]
    assert event["log_level"] == "error"
    assert event["connection_id"] == handle_of(probe).connection_id
    assert event["error"] == "ValueError"
    assert isinstance(event["exc_info"], ValueError)
    assert mw.hub.stats()["app_errors"] == 1
    assert mw.hub.connection_count == 0


async def test_app_raises_before_accept_reraises_and_unregisters() -> None:
    """An app error before accept propagates, sends nothing and leaves the registry empty."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise KeyError("early")

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    with capture_logs() as logs, pytest.raises(KeyError, match="early"):
        await finish(sock.serve(mw))
    assert sock.sent == []
    assert mw.hub.connection_count == 0
    assert len(mw.hub.registry) == 0
    assert not [e for e in logs if e["event"] == "app_exception"]


async def test_websocket_disconnect_from_app_is_swallowed() -> None:
    """``WebSocketDisconnect`` escaping the app is a departure: not raised, not logged as error."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.receive_text()

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    sock.disconnect(1001)
    with capture_logs() as logs:
        await finish(sock.serve(mw))
    assert not [e for e in logs if e["log_level"] == "error"]
    assert sock.closes() == []
    stats = mw.hub.stats()
    assert stats["closes"] == {"1001": 1}
    assert stats["closed_by"] == {"client": 1}
    assert stats["app_errors"] == 0


async def test_app_raised_websocket_disconnect_while_open_closes_1000() -> None:
    """An app raising ``WebSocketDisconnect`` itself on an open socket gets a 1000 close sent."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise WebSocketDisconnect(1001)

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    await finish(sock.serve(mw))
    assert sock.closes() == [{"type": "websocket.close", "code": 1000, "reason": ""}]


async def test_app_close_is_sent_once() -> None:
    """The app's own close goes out once; a second close and the middleware's close do not."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
        await send({"type": "websocket.close", "code": 4001, "reason": "again"})

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    await finish(sock.serve(mw))
    assert sock.closes() == [{"type": "websocket.close", "code": 4000, "reason": "bye"}]
    assert mw.hub.stats()["closed_by"] == {"app": 1}


async def test_app_refusing_before_accept_passes_through() -> None:
    """An app's own close before accept reaches the server unchanged and counts as not accepted."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008, "reason": "nope"})

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    await finish(sock.serve(mw))
    assert sock.sent == [{"type": "websocket.close", "code": 1008, "reason": "nope"}]
    assert mw.hub.connection_count == 0
    assert mw.hub.stats()["accepted"] == 0


async def test_send_after_peer_left_raises_oserror_and_ends_quietly() -> None:
    """Once the peer is gone the app's send raises an ``OSError``; the handler ends quietly."""
    probe = Probe()
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        await probe.release.wait()
        try:
            await send({"type": "websocket.send", "text": "late"})
        except BaseException as exc:
            errors.append(exc)
            raise

    mw = StabilizerMiddleware(app)
    sock = FakeSocket()
    task = sock.serve(mw)
    await sock.accepted()
    sock.disconnect(1001)
    await until(lambda: handle_of(probe).state == "closed", "the pump notices the disconnect")
    probe.release.set()
    with capture_logs() as logs:
        await finish(task)
    (error,) = errors
    assert isinstance(error, ConnectionGoneError)
    assert isinstance(error, OSError)
    assert not [e for e in logs if e["log_level"] == "error"]
    assert sock.sent_texts() == []


async def test_teardown_leaves_no_tasks() -> None:
    """After the handler ends, the pump and writer tasks of the connection are gone."""
    probe = Probe()
    mw = StabilizerMiddleware(accept_and_return(probe))
    sock = FakeSocket()
    await finish(sock.serve(mw))

    def ours() -> list[asyncio.Task[Any]]:
        return [
            t
            for t in asyncio.all_tasks()
            if t.get_name().startswith("asgi_ws_stabilizer") and not t.done()
        ]

    await until(lambda: not ours(), "our tasks end")


# -- inbound limits and heartbeat frames ------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.receive", "text": "x" * 11},
        {"type": "websocket.receive", "text": "é" * 6},
        {"type": "websocket.receive", "bytes": b"\x00" * 11},
    ],
    ids=["ascii", "utf8", "binary"],
)
async def test_oversized_message_closes_1009(message: Message) -> None:
    """A message over ``max_message_size`` (UTF-8 bytes) closes 1009; the app sees that code."""
    probe = Probe()
    mw = StabilizerMiddleware(receive_once(probe), max_message_size=10)
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.inbound.put_nowait(message)
    await finish(task)
    (close,) = sock.closes()
    assert close["code"] == 1009
    assert "exceeds limit of 10 bytes" in close["reason"]
    (seen,) = probe.received
    assert seen["type"] == "websocket.disconnect"
    assert seen["code"] == 1009
    assert mw.hub.stats()["oversized_messages"] == 1


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.receive", "text": "x" * 10},
        {"type": "websocket.receive", "text": "é" * 5},
        {"type": "websocket.receive", "bytes": b"\x00" * 10},
    ],
    ids=["ascii", "utf8", "binary"],
)
async def test_message_at_limit_is_delivered(message: Message) -> None:
    """A message of exactly ``max_message_size`` bytes reaches the app."""
    probe = Probe()
    mw = StabilizerMiddleware(receive_once(probe), max_message_size=10)
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.inbound.put_nowait(message)
    await finish(task)
    assert probe.received == [message]
    assert sock.closes() == [{"type": "websocket.close", "code": 1000, "reason": ""}]


async def test_no_size_limit_when_off() -> None:
    """With ``max_message_size`` off a large message is delivered."""
    probe = Probe()
    mw = StabilizerMiddleware(receive_once(probe), max_message_size=None)
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.text("x" * 2_000_000)
    await finish(task)
    assert len(probe.received[0]["text"]) == 2_000_000


async def test_1009_close_written_when_app_send_was_in_flight() -> None:
    """The 1009 close goes out even if the app was mid-send when the oversized message came."""
    probe = Probe()
    in_send = asyncio.Event()
    release = asyncio.Event()
    mw = StabilizerMiddleware(echo_app(probe), max_message_size=10, heartbeat_interval=0)
    sock = FakeSocket()
    plain_send = sock.send

    async def slow_send(message: Message) -> None:
        if message["type"] == "websocket.send":
            in_send.set()
            await release.wait()
        await plain_send(message)

    sock.send = slow_send  # type: ignore[method-assign]
    task = sock.serve(mw)
    sock.text("hi")
    await asyncio.wait_for(in_send.wait(), WAIT)
    sock.text("x" * 20)
    await until(lambda: mw.hub.stats()["oversized_messages"] == 1, "the limit trips")
    release.set()
    await finish(task)
    assert [m["code"] for m in sock.closes()] == [1009]


async def test_client_ping_answered_and_hidden() -> None:
    """A client's ``ping`` text is answered with ``pong`` and never reaches the app."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe))
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.text("ping")
    sock.text("hello")
    await until(lambda: len(sock.sent_texts()) == 2, "pong and echo sent")
    assert sorted(sock.sent_texts()) == ["echo:hello", "pong"]
    assert [m.get("text") for m in probe.received] == ["hello"]
    sock.disconnect()
    await finish(task)
    assert mw.hub.stats()["messages_in"] == 1


async def test_client_pong_hidden() -> None:
    """A client's ``pong`` is consumed by the middleware and not answered (a client in the
    text heartbeat: every client with ``heartbeat_clients="all"``)."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe), heartbeat_clients="all")
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.text("pong")
    sock.text("hello")
    await until(lambda: len(probe.received) == 1, "hello delivered")
    sock.disconnect()
    await finish(task)
    assert sock.sent_texts() == ["echo:hello"]
    assert [m.get("text") for m in probe.received] == ["hello", None]


async def test_custom_ping_and_pong_messages() -> None:
    """With custom heartbeat strings those are hidden, and the default ones reach the app."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe), ping_message="hb?", pong_message="hb!")
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.text("hb?")
    sock.text("ping")
    await until(lambda: len(sock.sent_texts()) == 2, "answer and echo sent")
    sock.disconnect()
    await finish(task)
    assert sorted(sock.sent_texts()) == ["echo:ping", "hb!"]


async def test_heartbeat_off_lets_ping_and_pong_through() -> None:
    """With the heartbeat off (interval 0) ``ping`` and ``pong`` are ordinary app messages."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe), heartbeat_interval=0)
    sock = FakeSocket()
    task = sock.serve(mw)
    sock.text("ping")
    sock.text("pong")
    await until(lambda: len(sock.sent_texts()) == 2, "both echoed")
    sock.disconnect()
    await finish(task)
    assert sock.sent_texts() == ["echo:ping", "echo:pong"]
    assert [m.get("text") for m in probe.received] == ["ping", "pong", None]


@pytest.mark.parametrize("beating", [False, True])
async def test_receive_queue_size_bounds_inbox(beating: bool) -> None:
    """An app that never receives gets exactly N messages queued; then the pump stops reading.
    A socket that gets our heartbeat has it paused meanwhile (the app is slow, not the peer);
    one that does not keeps the shared idle heartbeat state untouched."""
    size, extra = 3, 4
    probe = Probe()
    mw = StabilizerMiddleware(
        holding_app(probe),
        receive_queue_size=size,
        heartbeat_clients="all" if beating else "opted_in",
    )
    sock = FakeSocket()
    task = sock.serve(mw)
    await sock.accepted()
    for i in range(size + extra):
        sock.text(f"m{i}")
    connection = only_connection(mw.hub)
    await until(lambda: sock.receive_calls == 1 + size + 1, "the pump blocks on a full inbox")
    assert connection.heartbeat.paused is beating
    assert (connection.heartbeat is NO_HEARTBEAT) is not beating
    calls = sock.receive_calls
    await turns()
    assert len(connection.inbox) == size
    assert sock.receive_calls == calls == 1 + size + 1  # connect, N queued, one held
    assert sock.inbound.qsize() == extra - 1
    assert await connection.receive() == {"type": "websocket.receive", "text": "m0"}
    await until(lambda: sock.inbound.qsize() == extra - 2, "the pump reads one more")
    assert len(connection.inbox) == size
    probe.release.set()
    await finish(task)


async def test_disconnect_reaches_app_after_queued_messages() -> None:
    """Messages queued before the client left are delivered before the disconnect."""
    probe = Probe()
    mw = StabilizerMiddleware(record_app(probe))
    sock = FakeSocket()
    sock.text("a")
    sock.text("b")
    sock.disconnect(1001)
    await finish(sock.serve(mw))
    assert probe.received == [
        {"type": "websocket.receive", "text": "a"},
        {"type": "websocket.receive", "text": "b"},
        {"type": "websocket.disconnect", "code": 1001},
    ]


async def test_server_receive_failure_is_a_departure() -> None:
    """If the server's ``receive`` raises, the app sees a 1006 disconnect."""
    probe = Probe()
    mw = StabilizerMiddleware(receive_once(probe))
    sock = FakeSocket()
    plain_receive = sock.receive

    async def failing_receive() -> Message:
        message = await plain_receive()
        if message["type"] == "websocket.receive":
            raise ConnectionResetError("reset")
        return message

    sock.receive = failing_receive  # type: ignore[method-assign]
    task = sock.serve(mw)
    sock.text("boom")
    await finish(task)
    assert probe.received[0]["type"] == "websocket.disconnect"
    assert probe.received[0]["code"] == 1006


# -- heartbeat hooks (what the scheduler calls) -----------------------------------------------


async def test_send_ping_sends_ping_text() -> None:
    """A heartbeat ping goes out as the ``ping`` text and is not counted as app traffic."""
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe))
    sock = FakeSocket()
    task = sock.serve(mw)
    await sock.accepted()
    only_connection(mw.hub).send_ping()
    assert await sock.next_sent() == {"type": "websocket.send", "text": "ping"}
    stats = mw.hub.stats()
    assert stats["pings_sent"] == 1
    assert stats["messages_out"] == 0
    probe.release.set()
    await finish(task)


async def test_heartbeat_expiry_closes_4408() -> None:
    """A heartbeat timeout closes 4408, tells the app that code and unregisters at once."""
    probe = Probe()
    mw = StabilizerMiddleware(receive_once(probe))
    sock = FakeSocket()
    task = sock.serve(mw)
    await sock.accepted()
    with capture_logs() as logs:
        only_connection(mw.hub).heartbeat_expired()
        assert mw.hub.connection_count == 0
        await finish(task)
    assert sock.closes() == [
        {"type": "websocket.close", "code": 4408, "reason": "heartbeat timeout"}
    ]
    assert probe.received[0]["type"] == "websocket.disconnect"
    assert probe.received[0]["code"] == 4408
    assert [e["event"] for e in logs if e["event"] == "heartbeat_timeout"] == ["heartbeat_timeout"]
    stats = mw.hub.stats()
    assert stats["heartbeat_timeouts"] == 1
    assert stats["closes"] == {"4408": 1}
    assert stats["closed_by"] == {"middleware": 1}


async def test_close_written_when_background_send_in_flight_at_return() -> None:
    """The 1000 close goes out even if another app task is mid-send when the handler returns."""
    in_send = asyncio.Event()
    release = asyncio.Event()
    background: list[asyncio.Task[None]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})

        async def send_from_task() -> None:
            await send({"type": "websocket.send", "text": "from a task"})

        background.append(asyncio.create_task(send_from_task()))
        await asyncio.wait_for(in_send.wait(), WAIT)
        asyncio.get_running_loop().call_soon(release.set)

    mw = StabilizerMiddleware(app, heartbeat_interval=0)
    sock = FakeSocket()
    plain_send = sock.send

    async def slow_send(message: Message) -> None:
        if message["type"] == "websocket.send":
            in_send.set()
            await release.wait()
        await plain_send(message)

    sock.send = slow_send  # type: ignore[method-assign]
    await finish(sock.serve(mw))
    await asyncio.wait_for(asyncio.gather(*background, return_exceptions=True), WAIT)
    assert sock.sent_texts() == ["from a task"]
    assert sock.closes() == [{"type": "websocket.close", "code": 1000, "reason": ""}]


# -- handle -----------------------------------------------------------------------------------


async def test_handle_in_scope_state() -> None:
    """The app finds its handle in ``scope["state"]["stabilizer"]`` with ids and the hub."""
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe))
    sock = FakeSocket(query="client_id=alice", client=("10.1.1.1", 1234))
    task = sock.serve(mw)
    await sock.accepted()
    handle = handle_of(probe)
    assert handle.client_id == "alice"
    assert handle.remote_ip == "10.1.1.1"
    assert handle.state == "open"
    assert handle.hub is mw.hub
    assert handle.rtt is None
    assert handle.close_code is None
    assert len(handle.connection_id) == 16
    assert handle.session_id != handle.connection_id
    handle.user_data["name"] = "alice"
    assert only_connection(mw.hub).user_data == {"name": "alice"}
    assert "alice" in repr(handle)
    await handle.close(4001, "done")
    await handle.close(4002, "again")
    assert sock.closes() == [{"type": "websocket.close", "code": 4001, "reason": "done"}]
    assert handle.close_code == 4001
    assert handle.state == "closing"
    probe.release.set()
    await finish(task)
    assert sock.closes() == [{"type": "websocket.close", "code": 4001, "reason": "done"}]


async def test_generated_client_id_when_none_given() -> None:
    """Without a client id parameter each socket gets its own generated client id."""
    probes = [Probe(), Probe()]
    hub = Hub()
    socks = [FakeSocket(), FakeSocket()]
    tasks = [
        s.serve(StabilizerMiddleware(holding_app(p), hub=hub))
        for s, p in zip(socks, probes, strict=True)
    ]
    for sock in socks:
        await sock.accepted()
    ids = {handle_of(p).client_id for p in probes}
    assert len(ids) == 2
    assert sorted(hub.client_ids()) == sorted(ids)
    for probe in probes:
        probe.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


# -- lifespan and http ------------------------------------------------------------------------


async def lifespan_events(mw: StabilizerMiddleware, events: list[Message]) -> list[Message]:
    inbound: asyncio.Queue[Message] = asyncio.Queue()
    for event in events:
        inbound.put_nowait(event)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await asyncio.wait_for(mw(scope, inbound.get, send), WAIT)
    return sent


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    for _ in range(2):
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def test_bad_setting_fails_lifespan_startup() -> None:
    """A bad setting is reported as ``lifespan.startup.failed`` naming the env var."""
    called = Probe()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.calls += 1

    with capture_logs():
        mw = StabilizerMiddleware(app, heartbeat_timeout=-1)
    sent = await lifespan_events(mw, [{"type": "lifespan.startup"}])
    (failed,) = sent
    assert failed["type"] == "lifespan.startup.failed"
    assert "WS_STABILIZER_HEARTBEAT_TIMEOUT" in failed["message"]
    assert called.calls == 0


async def test_bad_setting_raises_on_http_and_websocket() -> None:
    """With a bad setting every non-lifespan scope raises the ``SettingsError``."""
    with capture_logs() as logs:
        mw = StabilizerMiddleware(echo_app(Probe()), heartbeat_timeout=-1)
    assert [e["event"] for e in logs] == ["settings_invalid"]
    with pytest.raises(SettingsError, match="WS_STABILIZER_HEARTBEAT_TIMEOUT"):
        await mw({"type": "http", "path": "/"}, FakeSocket().receive, FakeSocket().send)
    sock = FakeSocket()
    with pytest.raises(SettingsError):
        await finish(sock.serve(mw))
    with pytest.raises(SettingsError):
        mw.hub  # noqa: B018


async def test_bad_env_setting_fails_lifespan_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment value fails startup too, naming the variable."""
    monkeypatch.setenv("WS_STABILIZER_MAX_CONNECTIONS", "many")
    with capture_logs():
        mw = StabilizerMiddleware(lifespan_app)
    (failed,) = await lifespan_events(mw, [{"type": "lifespan.startup"}])
    assert "WS_STABILIZER_MAX_CONNECTIONS" in failed["message"]


async def test_hub_with_settings_keywords_is_an_error() -> None:
    """Passing both ``hub=`` and settings keywords is refused at startup."""
    with capture_logs():
        mw = StabilizerMiddleware(lifespan_app, hub=Hub(), heartbeat_interval=5)
    (failed,) = await lifespan_events(mw, [{"type": "lifespan.startup"}])
    assert failed["type"] == "lifespan.startup.failed"
    assert "heartbeat_interval" in failed["message"]


async def test_lifespan_starts_and_stops_hub() -> None:
    """Lifespan startup starts the hub's services and shutdown stops them."""
    mw = StabilizerMiddleware(lifespan_app)
    assert not mw.hub.running
    inbound: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    started = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            started.set()

    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    inbound.put_nowait({"type": "lifespan.startup"})
    task = asyncio.create_task(mw(scope, inbound.get, send))
    await asyncio.wait_for(started.wait(), WAIT)
    assert mw.hub.running
    assert scope["state"]["stabilizer"] is mw.hub
    inbound.put_nowait({"type": "lifespan.shutdown"})
    await finish(task)
    assert not mw.hub.running
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize("with_state", [True, False])
async def test_http_passes_through_with_hub_in_state(with_state: bool) -> None:
    """An http scope reaches the app unchanged but for the hub in ``scope["state"]``."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = StabilizerMiddleware(app)
    scope: dict[str, Any] = {"type": "http", "path": "/stats"}
    if with_state:
        scope["state"] = {"user": 1}
    sock = FakeSocket()
    await asyncio.wait_for(mw(scope, sock.receive, sock.send), WAIT)
    (got,) = seen
    assert got["state"]["stabilizer"] is mw.hub
    assert got["path"] == "/stats"
    if with_state:
        assert got["state"]["user"] == 1
    assert [m["type"] for m in sock.sent] == ["http.response.start", "http.response.body"]
    assert sock.receive_calls == 0


# -- logging ----------------------------------------------------------------------------------


def levels(logs: list[Any], *names: str) -> list[tuple[str, str]]:
    """``(event, level)`` of the captured events called ``names``, in order."""
    return [(e["event"], e["log_level"]) for e in logs if e["event"] in names]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        # By default an ordinary connection logs nothing at INFO: both events are DEBUG.
        ({}, []),
        ({"log_level": "DEBUG"}, [("connection_opened", "debug"), ("connection_closed", "debug")]),
        ({"log_connections": True}, [("connection_opened", "info"), ("connection_closed", "info")]),
        ({"log_connections": True, "log_level": "ERROR"}, []),
    ],
)
async def test_connection_events_levels(settings: dict[str, Any], expected: list[Any]) -> None:
    """``connection_opened`` and an ordinary ``connection_closed`` (the app returned: 1000)
    are DEBUG, or INFO with ``log_connections``; ``log_level`` filters them like any event."""
    probe = Probe()
    mw = StabilizerMiddleware(accept_and_return(probe), **settings)
    with capture_logs() as logs:
        await finish(FakeSocket().serve(mw))
    assert levels(logs, "connection_opened", "connection_closed") == expected


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1006, 4000])
async def test_a_close_that_is_not_ordinary_is_logged_at_info(code: int) -> None:
    """A client's 1000, 1001 or 1005 is an ordinary end (DEBUG); any other close, here a
    1006 or an app-defined code from the client, is INFO at the default settings."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe))
    sock = FakeSocket()
    with capture_logs() as logs:
        task = sock.serve(mw)
        await sock.accepted()
        sock.disconnect(code)
        await finish(task)
    level = "debug" if code in (1000, 1001, 1005) else "info"
    expected = [] if level == "debug" else [("connection_closed", level)]
    assert levels(logs, "connection_opened", "connection_closed") == expected
    if expected:
        assert logs[-1]["code"] == code


async def test_a_crash_logs_its_close_at_info() -> None:
    """An app that raises: ``app_exception`` (ERROR) and its 1011 ``connection_closed`` (INFO)."""
    mw = StabilizerMiddleware(accept_and_raise(Probe()))
    with capture_logs() as logs, pytest.raises(ValueError, match="boom"):
        await finish(FakeSocket().serve(mw))
    assert levels(logs, "app_exception", "connection_closed") == [
        ("app_exception", "error"),
        ("connection_closed", "info"),
    ]
    assert logs[-1]["code"] == 1011


async def test_open_and_close_events_carry_fields() -> None:
    """The open and close events carry the connection id, client id, code and traffic."""
    probe = Probe()
    mw = StabilizerMiddleware(echo_app(probe), log_connections=True)
    sock = FakeSocket(query="client_id=bob")
    sock.text("hey")
    with capture_logs() as logs:
        task = sock.serve(mw)
        await sock.accepted()
        assert (await sock.next_sent())["text"] == "echo:hey"
        sock.disconnect(1000)
        await finish(task)
    by_event = {e["event"]: e for e in logs}
    opened_event = by_event["connection_opened"]
    closed_event = by_event["connection_closed"]
    assert opened_event["connection_id"] == closed_event["connection_id"]
    assert opened_event["client_id"] == "bob"
    assert (opened_event["remote_ip"], opened_event["path"]) == ("127.0.0.1", "/ws")
    assert closed_event["code"] == 1000
    assert closed_event["closed_by"] == "client"
    assert closed_event["messages_in"] == 1
    assert closed_event["bytes_out"] == len("echo:hey")
    assert all("bob" not in e["event"] and "hey" not in e["event"] for e in logs)
