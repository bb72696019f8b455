"""Stall forensics: which code blocked the event loop.

A daemon thread watches the loop-lag probe's heartbeat (``beat``, a timestamp the probe stores
each time it runs: all the loop pays). When the probe is ``threshold`` seconds late, the loop is
blocked, and the thread samples the loop thread's stack (``sys._current_frames``, no source
read), so the ``event_loop_blocked`` event logged when the loop runs again names the file, line
and function that blocked it. A stall still going on after ``still_after`` seconds is reported
from the thread while it lasts (a deadlock would otherwise never be logged). Nothing runs per
callback.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable

from ..observe.stall import StallSample, sample


class StallWatchdog:
    """Samples the loop thread's stack while the loop is blocked."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        threshold: float,
        interval: float,
        still_after: float,
        still_blocked: Callable[[float, StallSample | None], None],
    ) -> None:
        self._loop = weakref.ref(loop)
        self.threshold = threshold
        self.interval = interval
        """How often the probe beats when the loop is free."""
        self.still_after = still_after
        self._still_blocked = still_blocked
        self.last_beat = time.monotonic()
        self._thread_id = threading.get_ident()
        self._stop = threading.Event()
        self._sampled: tuple[float, StallSample | None] | None = None
        self._reported: float | None = None
        self._watching = False
        """Whether the thread runs (it ends when the loop stops; the next beat starts one)."""

    def start(self) -> None:
        """Watch the loop this is called on, from a daemon thread (idempotent)."""
        if not self._watching and not self._stop.is_set():
            self._watching = True
            self._thread_id = threading.get_ident()
            self.last_beat = time.monotonic()
            threading.Thread(
                target=self._watch, name="asgi_ws_stabilizer:stall-watchdog", daemon=True
            ).start()

    def stop(self) -> None:
        """Stop watching (the thread ends within one tick)."""
        self._stop.set()

    def beat(self) -> None:
        """The probe ran: the loop is free now (and the thread runs again if the loop had
        stopped)."""
        self.last_beat = time.monotonic()
        if not self._watching:
            self.start()

    def take(self) -> StallSample | None:
        """The sample of the stall that is ending now (call before ``beat``), if one was
        taken."""
        sampled, self._sampled = self._sampled, None
        if sampled is None or sampled[0] != self.last_beat:
            return None
        return sampled[1]

    def _watch(self) -> None:
        tick = min(0.1, self.threshold / 4)
        try:
            while not self._stop.wait(tick):
                loop = self._loop()
                if loop is None or not loop.is_running():
                    return  # stopped or gone: nothing to watch (a beat starts a new thread)
                del loop
                beat = self.last_beat
                stalled = time.monotonic() - beat - self.interval
                if stalled < self.threshold:
                    continue
                if self._sampled is None or self._sampled[0] != beat:
                    self._sampled = (beat, sample(self._thread_id))
                if stalled >= self.still_after and self._reported != beat:
                    self._reported = beat
                    self._still_blocked(stalled, sample(self._thread_id))
        finally:
            self._watching = False
