"""The counters behind ``Hub.stats()``: the events' first sink.

Cheap increments on the hot path, one snapshot on demand.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .sink import Sink
from .traffic import Traffic


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
class Stats(Sink):
    """Process-wide counters of one hub."""

    accepted: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
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
    slow_consumers: Counter[str] = field(default_factory=Counter)
    rate_limits: int = 0
    evictions: int = 0
    finished_traffic: Traffic = field(default_factory=Traffic)
    rtt_times: RttStats = field(default_factory=RttStats)
    resumes: Counter[str] = field(default_factory=Counter)

    # -- the sink ----------------------------------------------------------------------------

    def opened(self) -> None:
        self.accepted += 1

    def closed(self, code: int, closed_by: str | None, duration: float, traffic: Traffic) -> None:
        self.finished_traffic.add(traffic)
        self.closes[code] += 1
        self.closed_by[closed_by or "unknown"] += 1

    def rejected(self, reason: str) -> None:
        self.rejections[reason] += 1

    def app_error(self) -> None:
        self.app_errors += 1

    def ping_sent(self) -> None:
        self.pings_sent += 1

    def rtt(self, seconds: float) -> None:
        self.rtt_times.add(seconds)

    def heartbeat_timeout(self) -> None:
        self.heartbeat_timeouts += 1

    def loop_stalled(self, lag: float) -> None:
        self.loop_stalls += 1
        self.loop_max_stall = max(self.loop_max_stall, lag)

    def oversized(self) -> None:
        self.oversized_messages += 1

    def rate_limited(self) -> None:
        self.rate_limits += 1

    def slow_consumer(self, action: str, frames: int) -> None:
        self.slow_consumers[action] += frames

    def evicted(self) -> None:
        self.evictions += 1

    def sent(self, kind: str) -> None:
        if kind == "broadcast":
            self.broadcasts += 1
        elif kind == "publish":
            self.publishes += 1
        else:
            self.direct_sends += 1

    def resumed(self, result: str) -> None:
        self.resumes[result] += 1

    # -- the snapshot ------------------------------------------------------------------------

    def snapshot(self, connections: int, live_traffic: Traffic) -> dict[str, Any]:
        """A JSON-ready dict; ``live_traffic`` is the open connections' share."""
        traffic = Traffic()
        traffic.add(self.finished_traffic)
        traffic.add(live_traffic)
        return {
            "connections": connections,
            "accepted": self.accepted,
            "rejected": dict(self.rejections),
            "rejected_total": sum(self.rejections.values()),
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
            "rtt": self.rtt_times.snapshot(),
            "broadcasts": self.broadcasts,
            "publishes": self.publishes,
            "direct_sends": self.direct_sends,
            "slow_consumer": dict(self.slow_consumers),
            "rate_limited": self.rate_limits,
            "memory_evictions": self.evictions,
            "resumes": dict(self.resumes),
        }
