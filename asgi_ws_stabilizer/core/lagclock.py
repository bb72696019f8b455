"""A clock that stops while the event loop is stalled.

When blocking code freezes the loop, every peer looks silent for as long as the freeze lasts,
although its frames are sitting in the kernel's buffers (websockets#1012). Heartbeat deadlines are
therefore measured on a clock from which measured stalls are subtracted: a probe callback asks to
run every ``probe_interval`` seconds, and whatever it is late by (beyond ordinary jitter) is stall.
A stall still in progress counts too, so the judgement is right even when the heartbeat callback
happens to run before the probe after a freeze.

Subtracting stalls is not enough on its own: the clock only knows a stall to within a probe
interval plus jitter, so up to that much of it still counts as elapsed, and when the loop comes
back it runs the heartbeat timer in the same iteration as the I/O callbacks that buffer what came
in meanwhile, one to three iterations before the task that reads the pong. So right after a
stall nobody is timed out: ``LagClock.hold`` postpones the verdict until the loop has run, stall
free, for a settle period of ``SETTLE`` seconds and ``SETTLE_ITERATIONS`` iterations.
"""

from __future__ import annotations

PROBE_INTERVAL = 0.1
"""Seconds between lag probes: ten cheap callbacks a second, no task."""

JITTER = 0.05
"""Lateness below this is ordinary scheduling jitter, not a stall."""

SETTLE = 2 * JITTER
"""Seconds of stall-free loop time after a stall before anyone is timed out."""

SETTLE_ITERATIONS = 4
"""Loop iterations after a stall before anyone is timed out: enough for every server's read path
(data received, then the server's reader task, then the app's task) to hand over a pong."""


class LagClock:
    """The synchronous core: stall accounting for a stream of probe observations."""

    __slots__ = (
        "calm_at",
        "expected",
        "iterations_left",
        "jitter",
        "max_lag",
        "probe_interval",
        "settle",
        "settle_iterations",
        "stalled",
        "stalls",
    )

    def __init__(
        self,
        probe_interval: float = PROBE_INTERVAL,
        jitter: float = JITTER,
        *,
        settle: float = SETTLE,
        settle_iterations: int = SETTLE_ITERATIONS,
    ) -> None:
        self.probe_interval = probe_interval
        self.jitter = jitter
        self.settle = settle
        self.settle_iterations = settle_iterations
        self.expected: float | None = None
        self.stalled = 0.0
        self.stalls = 0
        self.max_lag = 0.0
        self.calm_at = float("-inf")
        """Adjusted time from which verdicts may be given (the last disturbance + ``settle``)."""
        self.iterations_left = 0
        """Loop iterations still to run since the last disturbance (see ``iterated``)."""

    def arm(self, now: float) -> float:
        """Start a probe period at ``now``; returns when the probe should run."""
        self.expected = now + self.probe_interval
        return self.expected

    def observe(self, now: float) -> float:
        """The probe ran at ``now``; returns how late it was (0 within jitter)."""
        lag = self._late(now)
        self.expected = None
        if lag:
            self.stalled += lag - self.jitter
            self.stalls += 1
            self.max_lag = max(self.max_lag, lag)
            self.disturbed(now)
        return lag

    def disturbed(self, now: float) -> None:
        """The loop was unresponsive until ``now``: restart the settle period."""
        self.calm_at = max(self.calm_at, self.adjusted(now) + self.settle)
        self.iterations_left = self.settle_iterations

    def iterated(self) -> bool:
        """One loop iteration ran; returns whether the settle period still wants more."""
        if self.iterations_left > 0:
            self.iterations_left -= 1
        return self.iterations_left > 0

    def hold(self, now: float, late: float = 0.0) -> float | None:
        """Whether a verdict that a peer is silent may be given at ``now``.

        ``None`` when it may; else the adjusted time at which to look again. The loop counts as
        just out of a stall when the probe is overdue now (the stall has not been observed yet),
        when the caller's own timer ran ``late`` by more than jitter, or when a stall ended less
        than ``settle`` (stall-free) seconds or ``settle_iterations`` loop iterations ago. Data
        that arrived during a stall may still be unread then. A stall that recurs keeps
        holding (the scheduler caps that at a timeout per peer); once the loop runs freely,
        the verdict comes at most a settle period late.
        """
        if late > self.jitter or self._late(now):
            self.disturbed(now)
        adjusted = self.adjusted(now)
        if adjusted < self.calm_at:
            return self.calm_at
        if self.iterations_left:
            return adjusted + self.jitter  # a slow loop: its iterations have not run yet
        return None

    def adjusted(self, now: float) -> float:
        """``now`` minus every stall so far, the current one included.

        Only lateness beyond ``jitter`` is subtracted, so the clock never runs backwards.
        """
        late = self._late(now)
        return now - self.stalled - (late - self.jitter if late else 0.0)

    def _late(self, now: float) -> float:
        if self.expected is None:
            return 0.0
        lag = now - self.expected
        return lag if lag > self.jitter else 0.0
