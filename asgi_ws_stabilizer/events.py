"""Events: the one place where the middleware reports what happened.

Connection and hub code call one method per event. Each method feeds every sink (today the
counters behind ``hub.stats()``; a metrics sink later) and writes the structured log event listed
in the README's catalogue. No counter is touched anywhere else, and no event is logged twice.
Events that belong to a connection take that connection's log (it carries ``connection_id``).
"""

from __future__ import annotations

from typing import Any

from .admission import Refusal
from .log import EventLog
from .stats import Stats, Traffic


class Events:
    """Log events and counters for one hub."""

    __slots__ = ("log", "stall_threshold", "stats")

    def __init__(self, log: EventLog, stats: Stats, *, stall_threshold: float) -> None:
        self.log = log
        self.stats = stats
        self.stall_threshold = stall_threshold

    # -- a connection's life ----------------------------------------------------------------

    def rejected(self, refusal: Refusal, **fields: Any) -> None:
        """A handshake was refused by admission (the app never ran)."""
        self.stats.rejected[refusal.reason] += 1
        self.log.info("connection_rejected", reason=refusal.reason, status=refusal.status, **fields)

    def identify_refused(self, log: EventLog, refusal: Refusal, **fields: Any) -> None:
        """The app's ``identify()`` named a client id over its connection limit."""
        self.stats.rejected[refusal.reason] += 1
        log.info("identify_refused", reason=refusal.reason, **fields)

    def opened(self, log: EventLog, **fields: Any) -> None:
        """A socket was accepted."""
        self.stats.accepted += 1
        log.info("connection_opened", **fields)

    def closed(
        self,
        log: EventLog,
        *,
        code: int,
        closed_by: str | None,
        traffic: Traffic,
        **fields: Any,
    ) -> None:
        """An accepted socket ended."""
        stats = self.stats
        stats.finished_traffic.add(traffic)
        stats.closes[code] += 1
        stats.closed_by[closed_by or "unknown"] += 1
        log.info(
            "connection_closed",
            code=code,
            closed_by=closed_by,
            messages_in=traffic.messages_in,
            messages_out=traffic.messages_out,
            bytes_in=traffic.bytes_in,
            bytes_out=traffic.bytes_out,
            **fields,
        )

    def app_error(self, log: EventLog, exc: BaseException, **fields: Any) -> None:
        """The handler raised after accept (closed 1011)."""
        self.stats.app_errors += 1
        log.error("app_exception", error=type(exc).__name__, exc_info=exc, **fields)

    # -- heartbeat and the loop ---------------------------------------------------------------

    def ping_sent(self) -> None:
        """A heartbeat ping went out."""
        self.stats.pings_sent += 1

    def rtt(self, seconds: float) -> None:
        """A heartbeat round trip completed."""
        self.stats.rtt.add(seconds)

    def heartbeat_timeout(self, log: EventLog, **fields: Any) -> None:
        """A silent peer is closed 4408."""
        self.stats.heartbeat_timeouts += 1
        log.info("heartbeat_timeout", **fields)

    def loop_stalled(self, lag: float) -> None:
        """The event loop was blocked for ``lag`` seconds (beyond ordinary jitter)."""
        stats = self.stats
        stats.loop_stalls += 1
        stats.loop_max_stall = max(stats.loop_max_stall, lag)
        if lag >= self.stall_threshold:
            self.log.warning(
                "event_loop_blocked",
                lag_ms=round(lag * 1000, 1),
                threshold_ms=round(self.stall_threshold * 1000, 1),
                hint="blocking code in an async handler? use run_in_executor or an async library",
            )

    # -- limits ------------------------------------------------------------------------------

    def oversized(self, log: EventLog, *, size: int, limit: int) -> None:
        """An inbound message over ``max_message_size`` (closed 1009)."""
        self.stats.oversized_messages += 1
        log.info("message_too_big", size=size, limit=limit)

    def rate_limited(self, log: EventLog, **fields: Any) -> None:
        """A client over ``rate_limit`` (closed 4429)."""
        self.stats.rate_limited += 1
        log.warning("rate_limited", **fields)

    def slow_consumer(
        self, log: EventLog, *, action: str, frames: int, dropped_before: int, **fields: Any
    ) -> None:
        """Hub frames dropped for a slow socket, or the socket closed (``action="close"``).

        Logged once when dropping starts and then every 1000 drops, never once per message.
        """
        self.stats.slow_consumer[action] += frames
        before = dropped_before
        if action == "close" or before == 0 or before // 1000 != (before + frames) // 1000:
            log.warning(
                "slow_consumer",
                action=action,
                frames=frames,
                dropped_total=before + (frames if action != "close" else 0),
                **fields,
            )

    def evicted(self, log: EventLog, **fields: Any) -> None:
        """A socket shed for ``max_total_memory`` (closed 1013)."""
        self.stats.evictions += 1
        log.warning("memory_eviction", **fields)

    # -- messaging ---------------------------------------------------------------------------

    def sent(self, kind: str) -> None:
        """A hub send was made: ``broadcast``, ``publish`` or ``send_to``."""
        stats = self.stats
        if kind == "broadcast":
            stats.broadcasts += 1
        elif kind == "publish":
            stats.publishes += 1
        else:
            stats.direct_sends += 1
