"""Outbox: the bounded per-connection queue of hub sends, slow consumers and ``send_timeout``."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import ConnectionGoneError, Hub
from asgi_ws_stabilizer.aio import runner as runner_module
from asgi_ws_stabilizer.aio import sending as sending_module
from asgi_ws_stabilizer.core.delivery import BroadcastResult
from asgi_ws_stabilizer.hub import services as services_module

from ..timing import until
from .fakes import Probe, echo_app, finish, holding_app, record_app
from .served import GatedSocket, Served, Valve, end_all, serve

MIB = 1024 * 1024


async def stalled(
    hub: Hub, *, app: Callable[[Probe], ASGIApp] = holding_app
) -> tuple[Served, Valve]:
    """A served socket whose peer has stopped reading: data frames wait in the server's send."""
    valve = Valve()
    one = await serve(hub, sock=GatedSocket(valve), app=app)
    valve.shut()
    return one, valve


async def in_flight(one: Served, valve: Valve) -> None:
    """Wait until the writer is stuck writing the first queued frame."""
    await until(lambda: valve.in_flight == 1, "the first frame is being written")
    assert one.connection.gate.backlog == 0


async def reopen(one: Served, valve: Valve) -> None:
    """Let the peer read again and wait until its outbox is empty."""
    valve.open()
    await until(lambda: one.connection.gate.queued_bytes == 0, "the outbox drained")


async def test_max_send_queue_bounds_the_outbox_in_bytes() -> None:
    """``max_send_queue``: hub sends queue up to that many bytes (in-flight frame included)."""
    hub = Hub(max_send_queue=10, slow_consumer_policy="drop_newest")
    one, valve = await stalled(hub)
    assert (await hub.broadcast("aaaa")).queued == 1
    await in_flight(one, valve)
    assert (await hub.broadcast("bbbbbb")).queued == 1
    assert one.connection.gate.queued_bytes == 10
    assert await hub.broadcast("c") == BroadcastResult(targeted=1, queued=0, dropped=1)
    assert one.connection.gate.queued_bytes == 10
    await reopen(one, valve)
    assert one.texts() == ["aaaa", "bbbbbb"]
    assert await hub.broadcast("c") == BroadcastResult(targeted=1, queued=1)
    await end_all([one])


async def test_default_max_send_queue_is_one_mebibyte_then_closes_1013() -> None:
    """By default the outbox holds 1 MiB; one byte more closes the slow consumer with 1013."""
    hub = Hub()
    one, valve = await stalled(hub)
    assert (await hub.broadcast("x" * MIB)).queued == 1
    assert await hub.broadcast("y") == BroadcastResult(targeted=1, closed=1)
    valve.open()
    await until(lambda: bool(one.sock.closes()), "the close frame is written")
    assert one.sock.closes()[0]["code"] == 1013
    await end_all([one])


async def test_no_outbox_limit_when_max_send_queue_is_none() -> None:
    """``max_send_queue=None`` lets a stalled socket's outbox grow without a policy kicking in."""
    hub = Hub(max_send_queue=None)
    one, valve = await stalled(hub)
    for text in "abc":
        assert (await hub.broadcast(text * MIB)).queued == 1
    assert one.connection.gate.queued_bytes == 3 * MIB
    await reopen(one, valve)
    assert [len(t) for t in one.texts()] == [MIB] * 3
    assert hub.stats()["slow_consumer"] == {}
    await end_all([one])


async def test_close_policy_closes_the_slow_consumer_only() -> None:
    """``slow_consumer_policy=close``: overflow closes that socket 1013, logged and counted."""
    hub = Hub(max_send_queue=10, slow_consumer_policy="close")
    slow, valve = await stalled(hub, app=record_app)
    fast = await serve(hub)
    assert await hub.broadcast("aaaaaaaa") == BroadcastResult(targeted=2, queued=2)
    await in_flight(slow, valve)
    with capture_logs() as logs:
        outcome = await hub.broadcast("bbbbbbbb")
    assert outcome == BroadcastResult(targeted=2, queued=1, closed=1)
    (event,) = [e for e in logs if e["event"] == "slow_consumer"]
    assert event["log_level"] == "warning"
    assert (event["action"], event["limit"]) == ("close", 10)
    assert hub.stats()["slow_consumer"] == {"close": 1}
    await until(lambda: fast.texts() == ["aaaaaaaa", "bbbbbbbb"], "the fast socket got both")
    assert await hub.broadcast("after") == BroadcastResult(targeted=1, queued=1)
    valve.open()
    await finish(slow.task)
    reason = "slow consumer: send queue full"
    assert slow.texts() == ["aaaaaaaa"]
    assert slow.sock.closes() == [{"type": "websocket.close", "code": 1013, "reason": reason}]
    assert slow.probe.received == [{"type": "websocket.disconnect", "code": 1013, "reason": reason}]
    assert hub.stats()["closes"] == {"1013": 1}
    await end_all([fast])


async def test_drop_newest_policy_drops_the_frame_that_does_not_fit() -> None:
    """``slow_consumer_policy=drop_newest``: the new frame is dropped, queued ones stay, counted."""
    hub = Hub(max_send_queue=10, slow_consumer_policy="drop_newest")
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    await hub.broadcast("bbbb")
    assert await hub.broadcast("cccc") == BroadcastResult(targeted=1, dropped=1)
    assert await hub.broadcast("dd") == BroadcastResult(targeted=1, queued=1)
    assert one.handle.dropped == 1
    assert hub.stats()["slow_consumer"] == {"drop_newest": 1}
    await reopen(one, valve)
    assert one.texts() == ["aaaa", "bbbb", "dd"]
    assert one.handle.state == "open"
    await end_all([one])


async def test_drop_oldest_policy_drops_queued_hub_frames_first() -> None:
    """``slow_consumer_policy=drop_oldest``: oldest queued hub frames go; pongs, in-flight stay."""
    # 14 bytes: "aaaa" in flight, "bbbb" queued and the 4-byte pong fill 12 of them.
    hub = Hub(max_send_queue=14, slow_consumer_policy="drop_oldest")
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    await hub.broadcast("bbbb")
    one.sock.text("ping")
    await until(lambda: one.connection.gate.backlog == 2, "the pong is queued")
    assert (await hub.broadcast("cccc")).queued == 1
    assert (await hub.broadcast("dddddd")).queued == 1
    assert one.connection.gate.queued_bytes == 14
    assert one.handle.dropped == 2
    assert hub.stats()["slow_consumer"] == {"drop_oldest": 2}
    await reopen(one, valve)
    assert one.texts() == ["aaaa", "pong", "dddddd"]
    assert hub.stats()["messages_out"] == 2
    assert one.handle.state == "open"
    await end_all([one])


async def test_queued_pong_counts_its_own_size() -> None:
    """A queued pong counts the bytes of ``pong_message``, not of the client's ping."""
    hub = Hub(ping_message="?", pong_message="pong!!", max_send_queue=100)
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    one.sock.text("?")
    await until(lambda: one.connection.gate.backlog == 1, "the pong is queued")
    assert one.connection.gate.queued_bytes == 4 + 6
    await reopen(one, valve)
    assert one.texts() == ["aaaa", "pong!!"]
    await end_all([one])


async def test_pong_not_queued_when_the_outbox_is_full() -> None:
    """A client's ping is answered only while the outbox has room: a ping flood cannot grow it."""
    hub = Hub(max_send_queue=8, slow_consumer_policy="drop_newest")
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    await hub.broadcast("bbbb")
    for _ in range(5):
        one.sock.text("ping")
    await until(lambda: one.connection.inbox.bytes == 0 and one.sock.receive_calls >= 7, "read")
    assert one.connection.gate.backlog == 1
    assert one.connection.gate.queued_bytes == 8
    await reopen(one, valve)
    assert one.texts() == ["aaaa", "bbbb"]
    await end_all([one])


async def test_drop_oldest_is_reported_in_broadcast_result() -> None:
    """A socket that dropped older frames to take a broadcast counts in ``result.dropped``."""
    hub = Hub(max_send_queue=10, slow_consumer_policy="drop_oldest")
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    await hub.broadcast("bbbb")
    outcome = await hub.broadcast("cccc")
    assert one.handle.dropped == 1
    assert outcome.dropped == 1
    await reopen(one, valve)
    await end_all([one])


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
async def test_first_drop_is_logged(policy: str) -> None:
    """The first frame dropped for a socket logs a ``slow_consumer`` warning."""
    hub = Hub(max_send_queue=10, slow_consumer_policy=policy)
    one, valve = await stalled(hub)
    await hub.broadcast("aaaa")
    await in_flight(one, valve)
    await hub.broadcast("bbbb")
    with capture_logs() as logs:
        await hub.broadcast("cccc")
    assert hub.stats()["slow_consumer"] == {policy: 1}
    events = [e for e in logs if e["event"] == "slow_consumer"]
    assert [(e["action"], e["frames"], e["dropped_total"]) for e in events] == [(policy, 1, 1)]
    await reopen(one, valve)
    await end_all([one])


async def test_slow_consumer_never_delays_the_others() -> None:
    """Frames for healthy sockets are written while a stalled socket's outbox is stuck."""
    hub = Hub()
    slow, valve = await stalled(hub)
    fast = [await serve(hub) for _ in range(2)]
    for text in "abc":
        assert (await hub.broadcast(text)).queued == 3
    await until(lambda: all(one.texts() == ["a", "b", "c"] for one in fast), "written")
    assert slow.texts() == []
    assert slow.connection.gate.queued_bytes == 3
    await reopen(slow, valve)
    assert slow.texts() == ["a", "b", "c"]
    await end_all([slow, *fast])


async def test_app_and_hub_sends_go_out_in_one_order() -> None:
    """The app's sends and hub sends are written in the order they were handed over."""
    hub = Hub()
    valve = Valve()
    one = await serve(hub, sock=GatedSocket(valve), app=echo_app)
    valve.shut()
    await hub.broadcast("hub-0")
    await until(lambda: valve.in_flight == 1, "the hub frame is being written")
    one.sock.text("1")
    await until(lambda: one.connection.gate.backlog == 1, "the app's echo waits its turn")
    await hub.broadcast("hub-1")
    valve.open()
    await until(lambda: len(one.texts()) == 3, "three frames written")
    valve.shut()
    one.sock.text("2")
    await until(lambda: valve.in_flight == 1, "the app's echo is being written")
    await hub.broadcast("hub-2")
    valve.open()
    await until(lambda: len(one.texts()) == 5, "five frames written")
    assert one.texts() == ["hub-0", "echo:1", "hub-1", "echo:2", "hub-2"]
    await end_all([one])


async def test_send_timeout_marks_a_stuck_hub_send_dead() -> None:
    """``send_timeout``: a hub frame whose write does not finish in time ends the connection
    with 1013 (a slow consumer, closed by the middleware), and that close is handed to the
    server without waiting for it, so the server does not close on its own terms."""
    hub = Hub(send_timeout=0.05)
    one, _ = await stalled(hub, app=record_app)
    started = time.perf_counter()
    assert (await hub.broadcast("never read")).queued == 1
    await finish(one.task)
    assert time.perf_counter() - started >= 0.05
    reason = "slow consumer: send timed out"
    assert one.probe.received == [{"type": "websocket.disconnect", "code": 1013, "reason": reason}]
    assert one.sock.closes() == [{"type": "websocket.close", "code": 1013, "reason": reason}]
    assert hub.connection_count == 0
    assert hub.stats()["closes"] == {"1013": 1}
    assert hub.stats()["closed_by"] == {"middleware": 1}


async def test_send_timeout_fails_a_stuck_app_send() -> None:
    """``send_timeout``: the app's own send that does not finish in time raises an ``OSError``."""
    hub = Hub(send_timeout=0.05)
    errors: list[BaseException] = []

    def sender(probe: Probe) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            probe.scope = scope
            await receive()
            await send({"type": "websocket.accept"})
            try:
                await send({"type": "websocket.send", "text": "never read"})
            except OSError as exc:
                errors.append(exc)

        return app

    valve = Valve(shut=True)
    one = await serve(hub, sock=GatedSocket(valve), app=sender)
    await finish(one.task)
    (error,) = errors
    assert isinstance(error, ConnectionGoneError)
    assert "timed out" in str(error)
    assert hub.connection_count == 0
    assert hub.stats()["app_errors"] == 0


async def test_close_held_behind_a_blocked_write_is_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow consumer closed 1013 whose peer never reads again: once the close timeout has
    passed, the blocked write is cancelled and the 1013 close handed to the server without
    waiting; the handler returns and nothing is left waiting in the server's send."""
    monkeypatch.setattr(sending_module, "CLOSE_TIMEOUT", 0.05)
    monkeypatch.setattr(runner_module, "CLOSE_TIMEOUT", 0.05)
    monkeypatch.setattr(services_module, "CLOSE_TIMEOUT", 0.05)
    hub = Hub(max_send_queue=10, slow_consumer_policy="close")
    slow, valve = await stalled(hub, app=record_app)
    await hub.broadcast("aaaaaaaa")
    await in_flight(slow, valve)
    assert (await hub.broadcast("bbbbbbbb")).closed == 1
    await finish(slow.task)
    reason = "slow consumer: send queue full"
    assert slow.sock.closes() == [{"type": "websocket.close", "code": 1013, "reason": reason}]
    assert slow.texts() == []  # the data write never finished: the peer never read
    assert valve.in_flight == 0  # cancelled, not left hanging in the server's send
    assert hub.connection_count == 0
    assert hub.stats()["closes"] == {"1013": 1}
