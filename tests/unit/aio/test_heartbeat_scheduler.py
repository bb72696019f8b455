"""HeartbeatScheduler on a hand-cranked loop: one timer, pings, timeouts, isolation, stalls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest
import structlog

from asgi_ws_stabilizer.aio.heartbeat_scheduler import HeartbeatScheduler
from asgi_ws_stabilizer.aio.lagmonitor import LoopLagMonitor
from asgi_ws_stabilizer.core.heartbeat import HeartbeatState
from asgi_ws_stabilizer.core.lagclock import JITTER, SETTLE
from asgi_ws_stabilizer.observe.log import EventLog

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
    """Just enough of an event loop for the scheduler: a settable clock, ``call_at`` and
    ``call_soon`` (whose callbacks run, a round at a time, before the clock moves on)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[ManualTimer] = []
        self.soon: list[ManualTimer] = []
        self.soon_calls = 0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None], *args: Any) -> ManualTimer:
        timer = ManualTimer(when, callback)
        self.timers.append(timer)
        return timer

    def call_soon(self, callback: Callable[[], None], *args: Any) -> ManualTimer:
        self.soon_calls += 1
        handle = ManualTimer(self.now, callback)
        self.soon.append(handle)
        return handle

    def pending(self) -> list[ManualTimer]:
        return [t for t in self.timers if not t.cancelled]

    def run(self, timer: ManualTimer) -> None:
        """Run one timer now (to choose the order of callbacks due in the same iteration)."""
        timer.cancelled = True
        timer.callback()

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, running every timer due by then in order."""
        for _ in range(1000):
            if self.soon:
                ready, self.soon = self.soon, []
                for handle in ready:
                    if not handle.cancelled:
                        self.run(handle)
                continue
            due = [t for t in self.pending() if t.when <= to]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.now = max(self.now, timer.when)
            self.run(timer)
        self.now = to

    def stall(self, until: float) -> None:
        """Blocking code holds the loop until ``until``: the clock jumps, nothing runs."""
        self.now = until


class FakeConnection:
    """A connection as the scheduler sees it, counting what it was told to do."""

    def __init__(
        self,
        now: float = 0.0,
        *,
        broken: bool = False,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
    ) -> None:
        self.heartbeat = HeartbeatState(interval, timeout, now)
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
    connections: dict[str, FakeConnection], *, probe_from: float | None = None
) -> tuple[ManualLoop, HeartbeatScheduler]:
    """A scheduler on a manual loop; its lag probe runs from ``probe_from`` if given."""
    loop = ManualLoop()
    event_loop = cast(asyncio.AbstractEventLoop, loop)
    monitor = LoopLagMonitor(event_loop, lambda lag, where: None)
    if probe_from is not None:
        loop.now = probe_from
        monitor.start()
        loop.now = 0.0
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


# -- loop stalls (issue 7): heartbeat 0.2 s / 0.2 s, a 1 s stall starting 0.14 s after a ping ---
#
# The probe runs at 0.16, 0.26, 0.36, ...; the ping goes out at 0.2 (deadline 0.4) and the loop
# freezes from 0.35 to 1.35. The adjusted clock counts the stall up to the overdue probe plus
# jitter (0.36 + 0.05): the deadline has passed when the loop comes back, in the iteration that
# runs the timers and only buffers the pong that came in meanwhile.

BEAT = 0.2
PING_AT = 0.2
STALL_FROM = 0.35
BACK_AT = STALL_FROM + 1.0
MARGIN = 0.001


def stalled_after_ping(
    *, probe: bool = True
) -> tuple[ManualLoop, HeartbeatScheduler, FakeConnection]:
    conn = FakeConnection(interval=BEAT, timeout=BEAT)
    loop, scheduler = make({"a": conn}, probe_from=0.06 if probe else None)
    scheduler.add("a", PING_AT)
    loop.advance(STALL_FROM)
    assert conn.pings == 1
    assert conn.heartbeat.ping_sent_at == PING_AT
    loop.stall(BACK_AT)
    return loop, scheduler, conn


def scheduler_timer(loop: ManualLoop, scheduler: HeartbeatScheduler) -> ManualTimer:
    (timer,) = (t for t in loop.pending() if getattr(t.callback, "__self__", None) is scheduler)
    return timer


def read_pong(scheduler: HeartbeatScheduler, conn: FakeConnection) -> None:
    """A few iterations after the stall, the connection's task reads the pong."""
    conn.heartbeat.saw_pong(scheduler.clock.now())


def test_pong_read_after_stall_keeps_connection_when_probe_ran_first() -> None:
    """The probe has seen the stall when the heartbeat timer runs: no verdict until the loop has
    settled, and by then the pong that waited in the buffers has been read."""
    loop, scheduler, conn = stalled_after_ping()
    loop.advance(BACK_AT)  # probe (due 0.36), then the heartbeat timer (due 0.4)
    assert scheduler.clock.now() > PING_AT + BEAT
    assert conn.expired == 0
    read_pong(scheduler, conn)
    loop.advance(BACK_AT + BEAT + 0.01)  # past the second look, and the next ping
    assert conn.expired == 0
    assert conn.pings == 2


def test_pong_read_after_stall_keeps_connection_when_timer_runs_before_probe() -> None:
    """The heartbeat timer runs before the overdue probe: the stall in progress holds the
    verdict just the same."""
    loop, scheduler, conn = stalled_after_ping()
    loop.run(scheduler_timer(loop, scheduler))
    assert scheduler.clock.now() > PING_AT + BEAT
    assert conn.expired == 0
    loop.advance(BACK_AT)  # the probe, in the same iteration
    read_pong(scheduler, conn)
    loop.advance(BACK_AT + BEAT + 0.01)  # past the second look, and the next ping
    assert conn.expired == 0
    assert conn.pings == 2


def test_late_timer_alone_holds_the_verdict() -> None:
    """Without a probe (nothing stretches the deadline), a heartbeat timer that runs late by more
    than jitter still waits for the loop to settle before it times anyone out."""
    loop, scheduler, conn = stalled_after_ping(probe=False)
    loop.advance(BACK_AT)
    assert conn.expired == 0
    read_pong(scheduler, conn)
    loop.advance(BACK_AT + BEAT + 0.01)  # past the second look, and the next ping
    assert conn.expired == 0
    assert conn.pings == 2


def test_silent_peer_is_closed_one_settle_period_after_a_stall() -> None:
    """A peer that never answers is still timed out after a stall, a settle period late at most;
    without a stall, timeouts come on time and nothing but the one timer is used."""
    conn = FakeConnection(interval=BEAT, timeout=BEAT)
    loop, scheduler = make({"a": conn}, probe_from=0.06)
    scheduler.add("a", PING_AT)
    loop.advance(PING_AT + BEAT - MARGIN)
    assert conn.expired == 0
    loop.advance(PING_AT + BEAT + MARGIN)
    assert conn.expired == 1
    assert loop.soon_calls == 0

    loop, scheduler, conn = stalled_after_ping()
    loop.advance(BACK_AT)
    assert conn.expired == 0
    assert scheduler.clock.clock.calm_at == pytest.approx(scheduler.clock.now() + SETTLE)
    loop.advance(BACK_AT + SETTLE - MARGIN)
    assert conn.expired == 0
    loop.advance(BACK_AT + SETTLE + MARGIN)
    assert conn.expired == 1
    assert len(scheduler) == 0


def test_repeated_stalls_keep_deferring_then_a_silent_peer_is_closed() -> None:
    """A second stall within the settle period holds the verdict again; once the loop runs
    freely, the silent peer is closed within a settle period."""
    loop, scheduler, conn = stalled_after_ping()
    loop.advance(BACK_AT)
    loop.advance(BACK_AT + SETTLE / 2)
    loop.stall(BACK_AT + SETTLE / 2 + 1.0)
    second = loop.now
    loop.advance(second)
    assert conn.expired == 0
    loop.advance(second + SETTLE - MARGIN)
    assert conn.expired == 0
    assert len(scheduler) == 1  # held, still watched
    loop.advance(second + SETTLE + MARGIN)
    assert conn.expired == 1
    assert len(scheduler) == 0


def test_a_loop_that_never_settles_holds_nobody_longer_than_a_timeout() -> None:
    """Every look at a silent peer comes late (an overloaded loop): the verdict is held, but not
    for longer than the peer's timeout of adjusted time, so dead peers are still closed."""
    conn = FakeConnection(interval=BEAT, timeout=BEAT)
    loop, scheduler = make({"a": conn})
    scheduler.add("a", PING_AT)
    loop.advance(PING_AT)
    looks = []
    for _ in range(20):
        timer = scheduler_timer(loop, scheduler)
        loop.stall(timer.when + 1.2 * JITTER)
        looks.append(loop.now)
        loop.advance(loop.now)
        if conn.expired:
            break
    assert conn.expired == 1
    assert len(looks) > 2
    assert looks[-1] - looks[0] <= BEAT + SETTLE + 1.2 * JITTER + MARGIN
