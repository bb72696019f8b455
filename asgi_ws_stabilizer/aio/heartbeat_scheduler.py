"""One heartbeat scheduler for every connection of a hub.

A single timer callback, re-armed for the earliest deadline in a heap: no task per connection,
nothing per idle connection between its deadlines, and no ``await``: pings are queued on each
connection's gate without waiting, so one stuck socket cannot hold up anyone else's heartbeat.

A timeout is never given in a loop that has just come out of a stall (``LagClock.hold``): the
connection is looked at again after a settle period, once what came in during the stall has
been read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ..core.heartbeat import Beat, DeadlineHeap, HeartbeatState
from ..observe.log import EventLog
from .lagmonitor import LoopLagMonitor


class Beating(Protocol):
    """What the scheduler needs of a connection."""

    heartbeat: HeartbeatState

    def send_ping(self) -> None: ...
    def heartbeat_expired(self) -> None: ...


class HeartbeatScheduler:
    """Drives ``HeartbeatState.poll`` for many connections from one ``call_at`` timer."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock: LoopLagMonitor,
        lookup: Callable[[str], Beating | None],
        log: EventLog,
    ) -> None:
        self.loop = loop
        self.clock = clock
        self._lookup = lookup
        self._log = log
        self._heap = DeadlineHeap()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._held: dict[str, float] = {}
        """Connections whose timeout is being held after a stall: since when (adjusted)."""
        self.stopped = False

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, key: str, deadline: float) -> None:
        """Watch connection ``key``, first looking at it at ``deadline`` (adjusted clock)."""
        if self.stopped:
            return
        self._held.pop(key, None)
        self._heap.schedule(key, deadline)
        self._rearm()

    def remove(self, key: str) -> None:
        """Stop watching ``key``."""
        self._heap.remove(key)
        self._held.pop(key, None)
        if not len(self._heap):
            self._cancel_timer()

    def stop(self) -> None:
        """Stop for good (hub shutdown)."""
        self.stopped = True
        self._held.clear()
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _rearm(self) -> None:
        deadline = self._heap.next_deadline()
        if deadline is None or self.stopped:
            self._cancel_timer()
            return
        when = self.loop.time() + max(0.0, deadline - self.clock.now())
        if self._timer is not None and self._timer_at is not None and self._timer_at <= when:
            return
        self._cancel_timer()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        late = 0.0 if self._timer_at is None else self.loop.time() - self._timer_at
        self._timer = None
        self._timer_at = None
        now = self.clock.now()
        held = self._held
        hold: float | None = None
        judged = False
        for key in self._heap.pop_due(now):
            connection = self._lookup(key)
            if connection is None:
                if held:
                    held.pop(key, None)
                continue
            try:
                beat, next_deadline = connection.heartbeat.poll(now)
                if beat is Beat.TIMEOUT:
                    # Not while the loop is coming out of a stall: the peer's frames may be
                    # in our buffers, read only a few iterations from now. Look again then;
                    # but a loop that never settles holds nobody for more than a timeout.
                    if not judged:
                        judged = True
                        hold = self.clock.hold(late)
                    if hold is not None:
                        since = held.setdefault(key, now)
                        if now - since < connection.heartbeat.timeout:
                            self._heap.schedule(key, hold)
                            continue
                    held.pop(key, None)
                    connection.heartbeat_expired()
                    continue
                if held:
                    held.pop(key, None)
                if beat is Beat.PING:
                    connection.send_ping()
                self._heap.schedule(key, next_deadline)
            except Exception:  # one bad connection must not stop everyone's heartbeat
                self._log.error("heartbeat_error", connection_id=key, exc_info=True)
        self._rearm()
