"""LoopLagMonitor on a real loop: stalls reported, the clock stopped, verdicts held."""

from __future__ import annotations

import asyncio
import time

import pytest

from asgi_ws_stabilizer.aio.lagmonitor import LoopLagMonitor
from asgi_ws_stabilizer.aio.watchdog import StallWatchdog
from asgi_ws_stabilizer.core.lagclock import SETTLE, SETTLE_ITERATIONS, LagClock
from asgi_ws_stabilizer.observe.stall import StallSample

from ...timing import WAIT


async def test_monitor_reports_stall_and_stops_clock() -> None:
    """A 0.3 s block is reported to ``on_stall`` as ~0.3 s and barely advances ``now()``."""
    loop = asyncio.get_running_loop()
    stalls: list[float] = []
    reported = asyncio.Event()

    def on_stall(lag: float, where: StallSample | None) -> None:
        stalls.append(lag)
        reported.set()

    monitor = LoopLagMonitor(loop, on_stall, clock=LagClock(probe_interval=0.01))
    monitor.start()
    try:
        before = monitor.now()
        time.sleep(0.3)  # noqa: ASYNC251 - the stall under test: blocking code on the loop
        during = monitor.now()
        await asyncio.wait_for(reported.wait(), WAIT)
        after = monitor.now()
    finally:
        monitor.stop()
    assert 0.25 <= stalls[0] <= 0.5
    assert during - before < 0.1
    assert after - before < 0.1


async def test_monitor_start_stop_idempotent() -> None:
    """``start`` and ``stop`` may be called twice; ``running`` follows them."""
    monitor = LoopLagMonitor(asyncio.get_running_loop(), lambda lag, where: None)
    assert not monitor.running
    monitor.start()
    monitor.start()
    assert monitor.running
    monitor.stop()
    monitor.stop()
    assert not monitor.running
    assert monitor.clock.expected is None


async def test_monitor_holds_verdicts_after_a_stall_then_gives_way() -> None:
    """On a real loop: right after blocking code, ``hold`` postpones verdicts; once the loop has
    run ``SETTLE`` seconds and its iterations (counted by a few ``call_soon``), it gives way."""
    loop = asyncio.get_running_loop()
    monitor = LoopLagMonitor(loop, lambda lag, where: None)
    monitor.start()
    try:
        assert monitor.hold() is None
        time.sleep(0.3)  # noqa: ASYNC251 - the stall under test: blocking code on the loop
        again = monitor.hold()
        assert again is not None
        assert again == pytest.approx(monitor.now() + SETTLE, abs=0.01)
        assert monitor.clock.iterations_left == SETTLE_ITERATIONS
        # The probe runs in the next iteration and restarts the count: one more round.
        for _ in range(SETTLE_ITERATIONS + 1):
            await asyncio.sleep(0)
        assert monitor.clock.iterations_left == 0
        for _ in range(100):
            if monitor.now() >= again:
                break
            await asyncio.sleep(0.02)
        assert monitor.hold() is None
    finally:
        monitor.stop()


def block_the_loop(seconds: float) -> None:
    """Blocking code on the loop (what a handler calling time.sleep does)."""
    time.sleep(seconds)


async def test_a_stall_names_the_code_that_blocked_the_loop() -> None:
    """With the watchdog, the stall reported names this file, the line of the blocking call and
    its function, with a stack that leads to it."""
    loop = asyncio.get_running_loop()
    stalls: list[tuple[float, StallSample | None]] = []
    watchdog = StallWatchdog(
        loop, threshold=0.2, interval=0.01, still_after=60, still_blocked=lambda s, w: None
    )
    monitor = LoopLagMonitor(
        loop,
        lambda lag, where: stalls.append((lag, where)),
        clock=LagClock(probe_interval=0.01),
        watchdog=watchdog,
    )
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        block_the_loop(0.6)
        await asyncio.sleep(0.1)
    finally:
        monitor.stop()
    (_lag, where), *_ = [s for s in stalls if s[0] >= 0.5]
    assert where is not None
    assert where.file == __file__
    assert where.function == "block_the_loop"
    assert where.kind == "code"
    assert where.line == block_the_loop.__code__.co_firstlineno + 2
    assert any("test_a_stall_names_the_code_that_blocked_the_loop" in f for f in where.stack)


async def test_a_stall_still_going_on_is_reported_while_it_lasts() -> None:
    """A block longer than ``still_after`` is reported from the watchdog thread during it."""
    loop = asyncio.get_running_loop()
    reports: list[tuple[float, StallSample | None, float]] = []
    watchdog = StallWatchdog(
        loop,
        threshold=0.1,
        interval=0.01,
        still_after=0.4,
        still_blocked=lambda s, w: reports.append((s, w, time.monotonic())),
    )
    monitor = LoopLagMonitor(
        loop, lambda lag, where: None, clock=LagClock(probe_interval=0.01), watchdog=watchdog
    )
    monitor.start()
    try:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        block_the_loop(1.0)
        ended = time.monotonic()
        await asyncio.sleep(0.05)
    finally:
        monitor.stop()
    (stalled, where, at), *_ = reports
    assert len(reports) == 1, reports  # once per stall
    assert started < at < ended  # during the block, not after it
    assert stalled >= 0.4
    assert where is not None
    assert where.function == "block_the_loop"
