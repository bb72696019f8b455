"""LoopLagMonitor on a real loop: stalls reported, the clock stopped, verdicts held."""

from __future__ import annotations

import asyncio
import time

import pytest

from asgi_ws_stabilizer.aio.lagmonitor import LoopLagMonitor
from asgi_ws_stabilizer.core.lagclock import SETTLE, SETTLE_ITERATIONS, LagClock

from ...timing import WAIT


async def test_monitor_reports_stall_and_stops_clock() -> None:
    """A 0.3 s block is reported to ``on_stall`` as ~0.3 s and barely advances ``now()``."""
    loop = asyncio.get_running_loop()
    stalls: list[float] = []
    reported = asyncio.Event()

    def on_stall(lag: float) -> None:
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
    monitor = LoopLagMonitor(asyncio.get_running_loop(), lambda lag: None)
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
    monitor = LoopLagMonitor(loop, lambda lag: None)
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
