"""HeartbeatScheduler on a hand-cranked loop: one timer, pings, timeouts, isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import structlog

from asgi_ws_stabilizer.clock import LoopLagMonitor
from asgi_ws_stabilizer.heartbeat import HeartbeatState
from asgi_ws_stabilizer.log import EventLog
from asgi_ws_stabilizer.scheduler import HeartbeatScheduler

INTERVAL = 20.0
TIMEOUT = 10.0


class ManualTimer:
    """A ``call_at`` handle of the manual loop."""

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualLoop:
    """Just enough of an event loop for the scheduler: a settable clock and ``call_at``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[ManualTimer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None], *args: Any) -> ManualTimer:
        timer = ManualTimer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[ManualTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, running every timer due by then in order."""
        for _ in range(1000):
            due = [t for t in self.pending() if t.when <= to]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.now = max(self.now, timer.when)
            timer.cancelled = True
            timer.callback()
        self.now = to


class FakeConnection:
    """A connection as the scheduler sees it, counting what it was told to do."""

    def __init__(self, now: float = 0.0, *, broken: bool = False) -> None:
        self.heartbeat = HeartbeatState(INTERVAL, TIMEOUT, now)
        self.pings = 0
        self.expired = 0
        self.broken = broken

    def send_ping(self) -> None:
        if self.broken:
            raise RuntimeError("broken connection")
        self.pings += 1

    def heartbeat_expired(self) -> None:
        self.expired += 1


def make(
    connections: dict[str, FakeConnection],
) -> tuple[ManualLoop, HeartbeatScheduler]:
    loop = ManualLoop()
    event_loop = cast(asyncio.AbstractEventLoop, loop)
    monitor = LoopLagMonitor(event_loop, lambda lag: None)
    scheduler = HeartbeatScheduler(event_loop, monitor, connections.get, EventLog("DEBUG"))
    return loop, scheduler


def test_pings_at_interval_and_times_out_after_timeout() -> None:
    """A silent connection is pinged at its deadline and expired ``timeout`` later."""
    conn = FakeConnection()
    loop, scheduler = make({"a": conn})
    scheduler.add("a", INTERVAL)
    loop.advance(INTERVAL - 0.001)
    assert conn.pings == 0
    loop.advance(INTERVAL)
    assert conn.pings == 1
    loop.advance(INTERVAL + TIMEOUT - 0.001)
    assert conn.expired == 0
    loop.advance(INTERVAL + TIMEOUT)
    assert conn.expired == 1
    assert len(scheduler) == 0


def test_frame_after_ping_keeps_connection_alive() -> None:
    """A frame between ping and timeout cancels that timeout; the next silence is judged anew."""
    conn = FakeConnection()
    loop, scheduler = make({"a": conn})
    scheduler.add("a", INTERVAL)
    loop.advance(INTERVAL)
    conn.heartbeat.saw_frame(25.0)
    loop.advance(25.0 + INTERVAL + TIMEOUT - 0.001)
    assert conn.expired == 0
    assert conn.pings == 2
    loop.advance(25.0 + INTERVAL + TIMEOUT)
    assert conn.expired == 1


def test_one_timer_for_many_connections() -> None:
    """However many connections are watched, a single timer is pending, for the earliest one."""
    connections = {f"c{i}": FakeConnection() for i in range(50)}
    loop, scheduler = make(connections)
    for i, key in enumerate(connections):
        scheduler.add(key, INTERVAL + i)
    assert len(loop.pending()) == 1
    assert loop.pending()[0].when == INTERVAL


def test_removed_connection_is_not_polled() -> None:
    """A connection removed from the scheduler is neither pinged nor expired."""
    gone = FakeConnection()
    stays = FakeConnection()
    loop, scheduler = make({"gone": gone, "stays": stays})
    scheduler.add("gone", INTERVAL)
    scheduler.add("stays", INTERVAL)
    scheduler.remove("gone")
    loop.advance(INTERVAL + TIMEOUT)
    assert gone.pings == 0
    assert gone.expired == 0
    assert stays.pings == 1


def test_unknown_key_is_skipped() -> None:
    """A key whose connection the lookup no longer finds is dropped without error."""
    loop, scheduler = make({})
    scheduler.add("ghost", INTERVAL)
    loop.advance(INTERVAL)
    assert len(scheduler) == 0
    assert loop.pending() == []


def test_one_failing_connection_does_not_stop_the_others() -> None:
    """An exception from one connection is logged and everyone else still gets their ping."""
    broken = FakeConnection(broken=True)
    fine = FakeConnection()
    loop, scheduler = make({"broken": broken, "fine": fine})
    scheduler.add("broken", INTERVAL)
    scheduler.add("fine", INTERVAL)
    with structlog.testing.capture_logs() as logs:
        loop.advance(INTERVAL)
    assert fine.pings == 1
    assert [e["connection_id"] for e in logs if e["event"] == "heartbeat_error"] == ["broken"]


def test_stop_cancels_timer_and_ignores_new_connections() -> None:
    """After ``stop`` no timer is pending and added connections are not watched."""
    conn = FakeConnection()
    loop, scheduler = make({"a": conn})
    scheduler.add("a", INTERVAL)
    scheduler.stop()
    scheduler.add("a", INTERVAL)
    assert loop.pending() == []
    loop.advance(100.0)
    assert conn.pings == 0
