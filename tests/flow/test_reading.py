"""Who reads the server's receive(): the app inline while it waits, else the pump task."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from asgi_ws_stabilizer import Hub, StabilizerMiddleware
from asgi_ws_stabilizer.aio.connection import Connection
from asgi_ws_stabilizer.aio.inline import INLINE_READS

from ..timing import WAIT, turns, until
from .fakes import FakeSocket, Probe, echo_app, finish, holding_app

pytestmark = pytest.mark.skipif(not INLINE_READS, reason="inline reads need Python 3.11+")


def only(hub: Hub) -> Connection:
    (connection,) = list(hub.registry)
    return connection


async def test_app_waiting_in_receive_reads_inline_without_a_pump() -> None:
    """A handler that waits in receive() reads the socket itself: no pump task exists."""
    hub = Hub()
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(echo_app(probe), hub=hub))
    await sock.accepted()
    for i in range(5):
        sock.text(f"m{i}")
        assert (await sock.next_sent())["text"] == f"echo:m{i}"
        await turns(3)
        assert only(hub).pumping is False
    sock.disconnect()
    await finish(task)


async def test_handler_that_never_receives_gets_a_pump() -> None:
    """A handler that does not call receive() gets a pump, which sees pongs and the disconnect."""
    hub = Hub(heartbeat_interval=30)
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(holding_app(probe), hub=hub))
    await sock.accepted()
    await until(lambda: only(hub).pumping is True, "the pump starts")
    sock.text("ping")
    assert (await sock.next_sent())["text"] == "pong"
    sock.disconnect()
    await until(lambda: hub.connection_count == 0, "the disconnect is seen without the app")
    probe.release.set()
    await finish(task)


async def test_pump_hands_reading_back_to_the_app() -> None:
    """While the app is busy the pump reads; once the app waits again it reads inline."""
    hub = Hub()
    busy = asyncio.Event()
    got: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(100):
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            got.append(message["text"])
            if message["text"] == "work":
                await busy.wait()  # busy elsewhere: not in receive()

    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(app, hub=hub))
    await sock.accepted()
    sock.text("work")
    await until(lambda: only(hub).pumping is True, "the pump takes over")
    sock.text("a")
    await until(lambda: len(only(hub).inbox) == 1, "the pump queued it")
    busy.set()
    await until(lambda: got == ["work", "a"], "the app got both")
    # The pump is in the server's receive() now; it hands over after its next message.
    sock.text("b")
    await until(lambda: got == ["work", "a", "b"], "the pump delivered it")
    await until(lambda: only(hub).pumping is False, "the pump handed back")
    sock.text("c")
    await until(lambda: got == ["work", "a", "b", "c"], "read inline")
    assert only(hub).pumping is False
    sock.disconnect()
    await finish(task)


async def test_cancelling_the_app_is_not_swallowed() -> None:
    """Cancelling a handler blocked in an inline read still cancels it."""
    hub = Hub()
    reading = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        reading.set()
        await receive()

    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(app, hub=hub))
    await asyncio.wait_for(reading.wait(), WAIT)
    await turns(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    assert hub.connection_count == 0


async def echoed_once(hub: Hub) -> tuple[FakeSocket, asyncio.Task[None], Probe]:
    """A socket served by ``echo_app`` on ``hub``, accepted, that had "a" echoed."""
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(echo_app(probe), hub=hub))
    await sock.accepted()
    sock.text("a")
    assert (await sock.next_sent())["text"] == "echo:a"
    return sock, task, probe


async def test_the_short_way_is_taken_only_while_it_may_be() -> None:
    """``quick`` (the app's receive classifies ordinary data in its own frame) holds from the
    accept until the client speaks the text heartbeat; pings are still answered, and data still
    arrives after it."""
    hub = Hub()
    sock, task, _ = await echoed_once(hub)
    assert only(hub).quick is True
    sock.text("ping")  # a client that pings us gets our heartbeat: the long way from now on
    assert (await sock.next_sent())["text"] == "pong"
    assert only(hub).quick is False
    sock.text("b")
    assert (await sock.next_sent())["text"] == "echo:b"
    assert only(hub).quick is False
    sock.disconnect()
    await finish(task)


@pytest.mark.parametrize(
    "settings",
    [{"heartbeat_interval": 30, "heartbeat_clients": "all"}, {"rate_limit": 100}],
)
async def test_no_short_way_with_heartbeat_or_rate_limit(settings: dict[str, object]) -> None:
    """A socket that gets our heartbeat, or has a rate limit, never takes the short way."""
    hub = Hub(**settings)  # type: ignore[arg-type]
    sock, task, _ = await echoed_once(hub)
    assert only(hub).quick is False
    sock.disconnect()
    await finish(task)


async def test_oversized_data_on_the_short_way_closes_1009() -> None:
    """Data over ``max_message_size`` read the short way is not handed over: the socket is
    closed 1009, ``quick`` is off, and the app gets the disconnect with that code."""
    hub = Hub(max_message_size=10)
    sock, task, probe = await echoed_once(hub)
    connection = only(hub)
    assert connection.quick is True
    sock.text("x" * 11)
    sock.text("b")
    await until(lambda: bool(sock.closes()), "the 1009 close is written")
    assert connection.quick is False
    assert sock.closes()[0]["code"] == 1009
    assert probe.received[-1]["type"] == "websocket.disconnect"
    assert probe.received[-1]["code"] == 1009
    assert {"type": "websocket.receive", "text": "b"} not in probe.received
    sock.disconnect()
    await finish(task)


async def test_data_after_the_apps_own_close_is_not_handed_over() -> None:
    """An app that closes and reads on until the client's reply gets the disconnect, not the
    data the client sent meanwhile: its close ends the short way."""
    hub = Hub()
    got: list[Message] = []
    closed = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        got.append(await receive())
        await send({"type": "websocket.close", "code": 1000})
        closed.set()
        while True:
            message = await receive()
            got.append(message)
            if message["type"] == "websocket.disconnect":
                return

    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(app, hub=hub))
    await sock.accepted()
    connection = only(hub)
    sock.text("a")
    sock.text("late")  # in the server's queue before the close (and its disconnect)
    await asyncio.wait_for(closed.wait(), WAIT)
    assert connection.quick is False
    await finish(task)
    assert [m["type"] for m in got] == ["websocket.receive", "websocket.disconnect"]
