"""Heartbeat decisions: when to ping a connection and when to give up on it.

ASGI has no way to send protocol PING frames (asgiref#100), so the heartbeat is an application
message plus an idle timeout on inbound traffic. Everything here is synchronous and takes ``now``
(seconds on the lag-adjusted clock, see ``clock.py``); ``scheduler.py`` runs it on the loop.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum


class Beat(Enum):
    """What the scheduler must do for a connection whose deadline came."""

    WAIT = "wait"
    PING = "ping"
    TIMEOUT = "timeout"


class HeartbeatState:
    """Liveness of one connection.

    Any inbound frame counts as life (a large upload must not look like a dead peer, see
    websockets#1005); only the pong completes a round trip for the RTT figure.
    """

    __slots__ = (
        "interval",
        "last_seen",
        "paused",
        "ping_sent_at",
        "probe_sent_at",
        "rtt",
        "timeout",
    )

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self.last_seen = now
        self.ping_sent_at: float | None = None
        """When the ping still waiting for a sign of life went out."""
        self.probe_sent_at: float | None = None
        """When the ping still waiting for its pong went out (for the round-trip time)."""
        self.rtt: float | None = None
        self.paused = False

    def saw_frame(self, now: float) -> None:
        """Record any inbound frame: the peer is alive."""
        self.last_seen = now
        self.ping_sent_at = None

    def saw_pong(self, now: float) -> float | None:
        """Record the peer's pong; returns the round-trip time when a ping was outstanding.

        Data frames between the ping and the pong keep the peer alive but do not cancel the
        round-trip measurement.
        """
        sent = self.probe_sent_at
        self.probe_sent_at = None
        self.saw_frame(now)
        if sent is None:
            return None
        self.rtt = max(0.0, now - sent)
        return self.rtt

    def poll(self, now: float) -> tuple[Beat, float]:
        """Decide what is due at ``now``, and when to look again.

        While the connection is paused (the app is not reading, so neither are we), the peer
        cannot be judged: it still gets pings, which keep proxies' idle timers fed, but it is
        never timed out.
        """
        if self.ping_sent_at is not None:
            deadline = self.ping_sent_at + self.timeout
            if now < deadline:
                return Beat.WAIT, deadline
            if self.paused:
                self.last_seen = now
                self.ping_sent_at = None
            else:
                return Beat.TIMEOUT, now
        due = self.last_seen + self.interval
        if now < due:
            return Beat.WAIT, due
        self.ping_sent_at = now
        self.probe_sent_at = now
        return Beat.PING, now + self.timeout


@dataclass(order=True)
class _Entry:
    deadline: float
    seq: int
    key: str = field(compare=False)


class DeadlineHeap:
    """Deadlines of many connections in one heap, with lazy deletion.

    A connection has at most one live entry; an entry whose key has been rescheduled or removed
    is skipped when it surfaces. Cost: O(log n) per deadline, nothing per idle connection.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._current: dict[str, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._current)

    def __contains__(self, key: str) -> bool:
        return key in self._current

    def schedule(self, key: str, deadline: float) -> None:
        """Set (or move) the deadline of ``key``."""
        self._seq += 1
        self._current[key] = self._seq
        heapq.heappush(self._heap, _Entry(deadline, self._seq, key))

    def remove(self, key: str) -> None:
        """Forget ``key``; its entries are dropped when they surface."""
        self._current.pop(key, None)
        if not self._current:
            self._heap.clear()

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or ``None`` when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0].deadline if self._heap else None

    def pop_due(self, now: float) -> list[str]:
        """Remove and return every key whose deadline is at or before ``now``."""
        due = []
        while self._heap:
            self._drop_stale()
            if not self._heap or self._heap[0].deadline > now:
                break
            entry = heapq.heappop(self._heap)
            del self._current[entry.key]
            due.append(entry.key)
        return due

    def _drop_stale(self) -> None:
        heap = self._heap
        while heap and self._current.get(heap[0].key) != heap[0].seq:
            heapq.heappop(heap)
