"""LagClock stall accounting with explicit times."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.core.lagclock import (
    JITTER,
    PROBE_INTERVAL,
    SETTLE,
    SETTLE_ITERATIONS,
    LagClock,
)


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


def settle_iterations(clock: LagClock) -> None:
    """Run the loop iterations the clock wants after a disturbance."""
    for _ in range(SETTLE_ITERATIONS):
        clock.iterated()
    assert clock.iterations_left == 0


def test_hold_gives_way_on_a_calm_loop() -> None:
    """With no stall, late timer or overdue probe, a verdict may be given at once."""
    clock = LagClock()
    assert clock.hold(3.0) is None
    clock.arm(3.0)
    assert clock.hold(3.0 + PROBE_INTERVAL + JITTER * 0.8, late=JITTER * 0.8) is None
    assert clock.observe(3.0 + PROBE_INTERVAL) == 0.0
    assert clock.hold(3.0 + PROBE_INTERVAL) is None
    assert clock.iterations_left == 0


def test_hold_while_the_probe_is_overdue() -> None:
    """Right after a freeze, before the probe has run, verdicts wait a settle period from now."""
    clock = LagClock()
    clock.arm(0.0)
    back = PROBE_INTERVAL + JITTER  # the adjusted clock when the loop comes back
    assert clock.hold(5.0) == pytest.approx(back + SETTLE)
    assert clock.iterations_left == SETTLE_ITERATIONS
    clock.observe(5.0)  # the probe, later in the same iteration, agrees
    assert clock.calm_at == pytest.approx(back + SETTLE)


def test_hold_after_an_observed_stall_until_settled() -> None:
    """Once the probe has seen a stall, verdicts wait ``SETTLE`` seconds of stall-free time and
    ``SETTLE_ITERATIONS`` loop iterations; then they are given again."""
    clock = LagClock()
    clock.arm(0.0)
    clock.observe(1.0)
    clock.arm(1.0)
    back = clock.adjusted(1.0)
    assert back == pytest.approx(PROBE_INTERVAL + JITTER)
    assert clock.hold(1.0) == pytest.approx(back + SETTLE)
    assert clock.hold(1.0 + SETTLE * 0.9) == pytest.approx(back + SETTLE)
    # Time is up, but the loop has not iterated yet (a very slow loop): look again soon.
    assert clock.hold(1.0 + SETTLE) == pytest.approx(back + SETTLE + JITTER)
    settle_iterations(clock)
    assert clock.hold(1.0 + SETTLE) is None


def test_hold_when_the_callers_timer_ran_late() -> None:
    """A timer late by more than jitter means the loop was not responsive: hold; less is noise."""
    clock = LagClock()
    assert clock.hold(5.0, late=JITTER * 0.8) is None
    assert clock.hold(5.0, late=JITTER * 1.2) == pytest.approx(5.0 + SETTLE)
    settle_iterations(clock)
    assert clock.hold(5.0 + SETTLE * 0.9) == pytest.approx(5.0 + SETTLE)
    assert clock.hold(5.0 + SETTLE) is None


def test_repeated_stalls_keep_holding() -> None:
    """A stall within the settle period of another restarts it: verdicts wait for a calm loop."""
    clock = LagClock()
    clock.arm(0.0)
    clock.observe(1.0)
    clock.arm(1.0)
    first = clock.calm_at
    settle_iterations(clock)
    assert clock.hold(1.0 + SETTLE / 2) == pytest.approx(first)
    clock.observe(3.0)  # stalled again before settling
    clock.arm(3.0)
    assert clock.calm_at > first
    assert clock.iterations_left == SETTLE_ITERATIONS
    assert clock.hold(3.0 + SETTLE * 0.9) == pytest.approx(clock.calm_at)
    settle_iterations(clock)
    assert clock.hold(3.0 + SETTLE) is None


def test_iterated_counts_down_to_zero() -> None:
    """``iterated`` asks for more until the settle iterations have run, then stays at zero."""
    clock = LagClock()
    clock.disturbed(0.0)
    wants = [clock.iterated() for _ in range(SETTLE_ITERATIONS + 2)]
    assert wants == [True] * (SETTLE_ITERATIONS - 1) + [False] * 3
    assert clock.iterations_left == 0
