"""Counters for ``Hub.stats()``: cheap increments on the hot path, one snapshot on demand."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Traffic:
    """Data messages and payload bytes each way (heartbeat frames are not counted)."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, other: Traffic) -> None:
        """Add ``other``'s counts to these."""
        self.messages_in += other.messages_in
        self.messages_out += other.messages_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out


@dataclass
class RttStats:
    """Heartbeat round-trip times in seconds."""

    samples: int = 0
    total: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    last: float | None = None

    def add(self, rtt: float) -> None:
        """Record one round trip."""
        self.samples += 1
        self.total += rtt
        self.last = rtt
        self.minimum = rtt if self.minimum is None else min(self.minimum, rtt)
        self.maximum = rtt if self.maximum is None else max(self.maximum, rtt)

    def snapshot(self) -> dict[str, Any]:
        """Milliseconds, rounded to microseconds."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        mean = self.total / self.samples if self.samples else None
        return {
            "samples": self.samples,
            "mean_ms": ms(mean),
            "min_ms": ms(self.minimum),
            "max_ms": ms(self.maximum),
            "last_ms": ms(self.last),
        }


@dataclass
class Stats:
    """Process-wide counters of one hub."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    closes: Counter[int] = field(default_factory=Counter)
    closed_by: Counter[str] = field(default_factory=Counter)
    heartbeat_timeouts: int = 0
    pings_sent: int = 0
    oversized_messages: int = 0
    app_errors: int = 0
    loop_stalls: int = 0
    loop_max_stall: float = 0.0
    broadcasts: int = 0
    publishes: int = 0
    direct_sends: int = 0
    slow_consumer: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    evictions: int = 0
    finished_traffic: Traffic = field(default_factory=Traffic)
    rtt: RttStats = field(default_factory=RttStats)

    def snapshot(self, connections: int, live_traffic: Traffic) -> dict[str, Any]:
        """A JSON-ready dict; ``live_traffic`` is the open connections' share."""
        traffic = Traffic()
        traffic.add(self.finished_traffic)
        traffic.add(live_traffic)
        return {
            "connections": connections,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "closes": {str(int(code)): n for code, n in sorted(self.closes.items())},
            "closed_by": dict(self.closed_by),
            "messages_in": traffic.messages_in,
            "messages_out": traffic.messages_out,
            "bytes_in": traffic.bytes_in,
            "bytes_out": traffic.bytes_out,
            "heartbeat_timeouts": self.heartbeat_timeouts,
            "pings_sent": self.pings_sent,
            "oversized_messages": self.oversized_messages,
            "app_errors": self.app_errors,
            "loop_stalls": self.loop_stalls,
            "loop_max_stall_ms": round(self.loop_max_stall * 1000, 3),
            "rtt": self.rtt.snapshot(),
            "broadcasts": self.broadcasts,
            "publishes": self.publishes,
            "direct_sends": self.direct_sends,
            "slow_consumer": dict(self.slow_consumer),
            "rate_limited": self.rate_limited,
            "memory_evictions": self.evictions,
        }
