"""LagClock stall accounting with explicit times, and LoopLagMonitor on a real loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from asgi_ws_stabilizer.clock import JITTER, PROBE_INTERVAL, LagClock, LoopLagMonitor

from .fakes import WAIT


def test_arm_returns_probe_time() -> None:
    """Arming at ``now`` asks for the probe one probe interval later."""
    clock = LagClock()
    assert clock.arm(10.0) == pytest.approx(10.0 + PROBE_INTERVAL)
    assert clock.expected == pytest.approx(10.0 + PROBE_INTERVAL)


def test_punctual_probe_has_no_lag() -> None:
    """A probe that runs on time reports no lag and leaves the clock equal to real time."""
    clock = LagClock()
    clock.arm(10.0)
    assert clock.observe(10.1) == 0.0
    assert clock.stalls == 0
    assert clock.adjusted(10.5) == pytest.approx(10.5)


def test_late_probe_counts_as_stall() -> None:
    """A probe late by more than jitter reports the lag; the part beyond jitter is subtracted."""
    clock = LagClock()
    clock.arm(10.0)
    assert clock.observe(10.6) == pytest.approx(0.5)
    assert clock.stalls == 1
    assert clock.stalled == pytest.approx(0.5 - JITTER)
    assert clock.max_lag == pytest.approx(0.5)
    assert clock.expected is None
    assert clock.adjusted(11.0) == pytest.approx(10.5 + JITTER)


def test_stalls_accumulate() -> None:
    """Every stall adds to the total, and ``max_lag`` keeps the longest."""
    clock = LagClock()
    clock.arm(0.0)
    clock.observe(0.4)
    clock.arm(0.4)
    clock.observe(1.5)
    assert clock.stalls == 2
    assert clock.stalled == pytest.approx(0.3 + 1.0 - 2 * JITTER)
    assert clock.max_lag == pytest.approx(1.0)
    assert clock.adjusted(2.0) == pytest.approx(2.0 - 1.3 + 2 * JITTER)


def test_jitter_below_threshold_not_counted() -> None:
    """Lateness within jitter is ordinary scheduling noise: no stall, real time unchanged."""
    clock = LagClock()
    clock.arm(0.0)
    late = PROBE_INTERVAL + JITTER * 0.8
    assert clock.adjusted(late) == pytest.approx(late)
    assert clock.observe(late) == 0.0
    assert clock.stalls == 0
    assert clock.stalled == 0.0


def test_stall_in_progress_is_subtracted_before_probe_runs() -> None:
    """Code that reads the clock right after a freeze, before the probe, already sees it stopped."""
    clock = LagClock()
    clock.arm(0.0)
    assert clock.adjusted(5.1) == pytest.approx(PROBE_INTERVAL + JITTER)
    clock.observe(5.1)
    assert clock.adjusted(5.1) == pytest.approx(PROBE_INTERVAL + JITTER)


def test_unarmed_clock_is_real_time_minus_past_stalls() -> None:
    """With no probe outstanding only finished stalls are subtracted."""
    clock = LagClock()
    assert clock.adjusted(3.0) == 3.0


def test_adjusted_clock_never_runs_backwards() -> None:
    """Reading the adjusted clock at a later real time never gives an earlier value."""
    clock = LagClock()
    clock.arm(0.0)
    readings = [clock.adjusted(PROBE_INTERVAL + i * JITTER / 10) for i in range(20)]
    assert readings == sorted(readings)


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
