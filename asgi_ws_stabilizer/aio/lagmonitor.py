"""The loop-lag monitor: probes the running loop and feeds a ``LagClock`` (see core/lagclock.py);
with a ``StallWatchdog`` (aio/watchdog.py), each stall comes with where the loop was held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..core.lagclock import LagClock
from ..observe.stall import StallSample
from .watchdog import StallWatchdog


class LoopLagMonitor:
    """Runs a ``LagClock`` probe on the loop and reports stalls over a threshold."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_stall: Callable[[float, StallSample | None], None],
        *,
        clock: LagClock | None = None,
        watchdog: StallWatchdog | None = None,
    ) -> None:
        self.loop = loop
        self.clock = clock or LagClock()
        self._on_stall = on_stall
        self.watchdog = watchdog
        self._handle: asyncio.TimerHandle | None = None
        self._iteration: asyncio.Handle | None = None

    @property
    def running(self) -> bool:
        """Whether the probe is scheduled."""
        return self._handle is not None

    def now(self) -> float:
        """The lag-adjusted time."""
        return self.clock.adjusted(self.loop.time())

    def hold(self, late: float = 0.0) -> float | None:
        """``LagClock.hold`` now: ``None`` when a peer may be judged silent, else the adjusted
        time to look again. ``late``: how late the caller's timer callback ran."""
        held = self.clock.hold(self.loop.time(), late)
        self._count_iterations()
        return held

    def start(self) -> None:
        """Begin probing (idempotent)."""
        if self._handle is None:
            self._handle = self.loop.call_at(self.clock.arm(self.loop.time()), self._probe)
            if self.watchdog is not None:
                self.watchdog.start()

    def stop(self) -> None:
        """Stop probing (idempotent)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._iteration is not None:
            self._iteration.cancel()
            self._iteration = None
        self.clock.expected = None
        self.clock.iterations_left = 0
        if self.watchdog is not None:
            self.watchdog.stop()

    def _probe(self) -> None:
        now = self.loop.time()
        lag = self.clock.observe(now)
        self._handle = self.loop.call_at(self.clock.arm(now), self._probe)
        watchdog = self.watchdog
        where = watchdog.take() if watchdog is not None and lag else None
        if watchdog is not None:
            watchdog.beat()
        if lag:
            self._count_iterations()
            self._on_stall(lag, where)

    def _count_iterations(self) -> None:
        """After a disturbance, tell the clock about each loop iteration (``call_soon`` runs its
        callback in the next one) until it has seen enough: a few callbacks, only after stalls."""
        if self.clock.iterations_left and self._iteration is None:
            self._iteration = self.loop.call_soon(self._iterated)

    def _iterated(self) -> None:
        self._iteration = None
        if self.clock.iterated():
            self._iteration = self.loop.call_soon(self._iterated)
