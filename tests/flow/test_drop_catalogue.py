"""The five usual ways a WebSocket drops, and what an operator sees in the log for each (the
README's "What the log says" shows these events; this keeps it true)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import Hub, StabilizerMiddleware

from ..timing import t, until
from .fakes import FakeSocket, echo_app, finish, record_app
from .served import GatedSocket, Valve, serve


def events(logs: Sequence[MutableMapping[str, Any]], *names: str) -> list[MutableMapping[str, Any]]:
    """The captured events called ``names``, in order."""
    return [e for e in logs if e["event"] in names]


async def raising_app(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise ZeroDivisionError("division by zero")


def blocking_call() -> None:
    time.sleep(0.6)  # the stall under test: blocking code in a sync helper


async def blocking_app(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    blocking_call()
    await send({"type": "websocket.send", "text": "done"})
    await receive()


async def test_1_a_handler_that_raises() -> None:
    hub = Hub(heartbeat_interval=None)
    sock = FakeSocket(query="client_id=ann")
    with capture_logs() as logs:
        task = sock.serve(StabilizerMiddleware(raising_app, hub=hub))
        await sock.accepted()
        sock.text("boom")
        with pytest.raises(ZeroDivisionError):  # re-raised for the server to log too
            await finish(task)
    error, closed = events(logs, "app_exception", "connection_closed")
    assert (error["log_level"], error["client_id"]) == ("error", "ann")
    assert isinstance(error["exc_info"], ZeroDivisionError)
    assert (closed["code"], closed["closed_by"], closed["messages_in"]) == (1011, "middleware", 1)


async def test_2_a_blocked_event_loop() -> None:
    hub = Hub(heartbeat_interval=None, loop_stall_threshold=0.3)
    sock = FakeSocket(query="client_id=bob")
    with capture_logs() as logs:
        task = sock.serve(StabilizerMiddleware(blocking_app, hub=hub))
        await sock.accepted()
        await asyncio.sleep(t(0.2))
        sock.text("go")
        await until(lambda: sock.sent_texts() == ["done"], "the handler ran", t(5))
        await asyncio.sleep(t(0.2))
        sock.disconnect()
        await finish(task)
    (blocked,) = events(logs, "event_loop_blocked")
    assert blocked["log_level"] == "warning"
    assert blocked["lag_ms"] >= 400
    assert (blocked["file"], blocked["function"], blocked["kind"]) == (
        __file__,
        "blocking_call",
        "code",
    )
    assert blocked["line"] == blocking_call.__code__.co_firstlineno + 1


async def test_3_a_silent_peer_behind_a_proxy() -> None:
    hub = Hub(heartbeat_interval=0.1, heartbeat_timeout=0.1)
    with capture_logs() as logs:
        one = await serve(hub, app=record_app, query="_stabilizer=1&client_id=cy")
        await finish(one.task)
    timeout, closed = events(logs, "heartbeat_timeout", "connection_closed")
    assert (timeout["log_level"], timeout["client_id"]) == ("info", "cy")
    assert (closed["code"], closed["closed_by"]) == (4408, "middleware")


async def test_4_an_oversized_message() -> None:
    hub = Hub(heartbeat_interval=None, max_message_size=1024)
    with capture_logs() as logs:
        one = await serve(hub, app=echo_app, query="client_id=dee")
        one.sock.text("x" * 2000)
        await finish(one.task)
    big, closed = events(logs, "message_too_big", "connection_closed")
    assert (big["size"], big["limit"]) == (2000, 1024)
    assert (closed["code"], closed["closed_by"]) == (1009, "middleware")


async def test_5_a_slow_consumer() -> None:
    hub = Hub(heartbeat_interval=None, max_send_queue=4096, slow_consumer_policy="close")
    valve = Valve(shut=True)
    with capture_logs() as logs:
        slow = await serve(hub, app=record_app, sock=GatedSocket(valve, query="client_id=eve"))
        for _ in range(10):
            await hub.broadcast("y" * 1000)
        valve.open()
        slow.sock.disconnect()
        await finish(slow.task)
    slow_event, closed = events(logs, "slow_consumer", "connection_closed")
    assert (slow_event["action"], slow_event["limit"], slow_event["client_id"]) == (
        "close",
        4096,
        "eve",
    )
    assert closed["code"] == 1013
