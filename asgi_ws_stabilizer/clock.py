"""A clock that stops while the event loop is stalled.

When blocking code freezes the loop, every peer looks silent for as long as the freeze lasts,
although its frames are sitting in the kernel's buffers (websockets#1012). Heartbeat deadlines are
therefore measured on a clock from which measured stalls are subtracted: a probe callback asks to
run every ``probe_interval`` seconds, and whatever it is late by (beyond ordinary jitter) is stall.
A stall still in progress counts too, so the judgement is right even when the heartbeat callback
happens to run before the probe after a freeze.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

PROBE_INTERVAL = 0.1
"""Seconds between lag probes: ten cheap callbacks a second, no task."""

JITTER = 0.05
"""Lateness below this is ordinary scheduling jitter, not a stall."""


class LagClock:
    """The synchronous core: stall accounting for a stream of probe observations."""

    __slots__ = ("expected", "jitter", "max_lag", "probe_interval", "stalled", "stalls")

    def __init__(self, probe_interval: float = PROBE_INTERVAL, jitter: float = JITTER) -> None:
        self.probe_interval = probe_interval
        self.jitter = jitter
        self.expected: float | None = None
        self.stalled = 0.0
        self.stalls = 0
        self.max_lag = 0.0

    def arm(self, now: float) -> float:
        """Start a probe period at ``now``; returns when the probe should run."""
        self.expected = now + self.probe_interval
        return self.expected

    def observe(self, now: float) -> float:
        """The probe ran at ``now``; returns how late it was (0 within jitter)."""
        lag = self._late(now)
        if lag:
            self.stalled += lag - self.jitter
            self.stalls += 1
            self.max_lag = max(self.max_lag, lag)
        self.expected = None
        return lag

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


class LoopLagMonitor:
    """Runs a ``LagClock`` probe on the loop and reports stalls over a threshold."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_stall: Callable[[float], None],
        *,
        clock: LagClock | None = None,
    ) -> None:
        self.loop = loop
        self.clock = clock or LagClock()
        self._on_stall = on_stall
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        """Whether the probe is scheduled."""
        return self._handle is not None

    def now(self) -> float:
        """The lag-adjusted time."""
        return self.clock.adjusted(self.loop.time())

    def start(self) -> None:
        """Begin probing (idempotent)."""
        if self._handle is None:
            self._handle = self.loop.call_at(self.clock.arm(self.loop.time()), self._probe)

    def stop(self) -> None:
        """Stop probing (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.clock.expected = None

    def _probe(self) -> None:
        now = self.loop.time()
        lag = self.clock.observe(now)
        self._handle = self.loop.call_at(self.clock.arm(now), self._probe)
        if lag:
            self._on_stall(lag)
