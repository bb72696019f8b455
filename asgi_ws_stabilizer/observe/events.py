"""Events: the one place where the middleware reports what happened.

Connection and hub code call one method per event. Each method feeds every sink (the counters
behind ``hub.stats()`` are the first; a metrics sink can be another, see observe/sink.py) and
writes the structured log event listed in the README's catalogue. No counter is touched anywhere
else, and no event is logged twice. Events that belong to a connection take that connection's
log (it carries ``connection_id``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..core.admission import Refusal
from .log import EventLog
from .sink import Sink
from .stall import StallSample
from .traffic import Traffic

SAMPLE_EVERY = 2.0
"""Seconds between two ``sample`` calls when a sink wants them (the metrics' copy of the
per-message counts and the gauges)."""

ORDINARY_CLOSES = frozenset({1000, 1001, 1005})
"""Close codes of a connection that simply ended (normal, going away, no status): its
``connection_closed`` is at DEBUG unless ``log_connections``; any other close is at INFO."""


class Events:
    """Log events and sinks for one hub."""

    __slots__ = ("connection_level", "log", "sampling", "sinks", "stall_threshold")

    def __init__(
        self,
        log: EventLog,
        sinks: Sequence[Sink],
        *,
        stall_threshold: float,
        log_connections: bool = False,
    ) -> None:
        self.log = log
        self.connection_level = logging.INFO if log_connections else logging.DEBUG
        """The level of ``connection_opened`` and of an ordinary ``connection_closed``."""
        self.sinks = tuple(sinks)
        self.stall_threshold = stall_threshold
        self.sampling = any(sink.samples for sink in self.sinks)
        """Whether a sink wants ``sample`` every few seconds and fan-outs timed (metrics on);
        otherwise neither costs anything."""

    # -- a connection's life ----------------------------------------------------------------

    def rejected(self, refusal: Refusal, **fields: Any) -> None:
        """A handshake was refused by admission (the app never ran)."""
        for sink in self.sinks:
            sink.rejected(refusal.reason)
        self.log.info("connection_rejected", reason=refusal.reason, status=refusal.status, **fields)

    def identify_refused(self, log: EventLog, refusal: Refusal, **fields: Any) -> None:
        """The app's ``identify()`` named a client id over its connection limit."""
        for sink in self.sinks:
            sink.rejected(refusal.reason)
        log.info("identify_refused", reason=refusal.reason, **fields)

    def opened(self, log: EventLog, **fields: Any) -> None:
        """A socket was accepted."""
        for sink in self.sinks:
            sink.opened()
        log.at(self.connection_level, "connection_opened", **fields)

    def closed(
        self,
        log: EventLog,
        *,
        code: int,
        closed_by: str | None,
        duration_s: float,
        traffic: Traffic,
        **fields: Any,
    ) -> None:
        """An accepted socket ended."""
        for sink in self.sinks:
            sink.closed(code, closed_by, duration_s, traffic)
        level = self.connection_level if code in ORDINARY_CLOSES else logging.INFO
        if not log.enabled(level):
            return
        log.at(
            level,
            "connection_closed",
            code=code,
            closed_by=closed_by,
            duration_s=duration_s,
            messages_in=traffic.messages_in,
            messages_out=traffic.messages_out,
            bytes_in=traffic.bytes_in,
            bytes_out=traffic.bytes_out,
            **fields,
        )

    def app_error(self, log: EventLog, exc: BaseException, **fields: Any) -> None:
        """The handler raised after accept (closed 1011)."""
        for sink in self.sinks:
            sink.app_error()
        log.error("app_exception", error=type(exc).__name__, exc_info=exc, **fields)

    def resumed(self, log: EventLog, **fields: Any) -> None:
        """A socket resumed its session."""
        for sink in self.sinks:
            sink.resumed("resumed")
        log.info("session_resumed", **fields)

    def resume_refused(self, log: EventLog, *, reason: str, session_id: str) -> None:
        """A resume was asked for and refused (the socket got the fresh ``session_id``)."""
        for sink in self.sinks:
            sink.resumed(reason)
        log.info("resume_refused", reason=reason, session_id=session_id)

    # -- heartbeat and the loop ---------------------------------------------------------------

    def ping_sent(self) -> None:
        """A heartbeat ping went out."""
        for sink in self.sinks:
            sink.ping_sent()

    def rtt(self, seconds: float) -> None:
        """A heartbeat round trip completed."""
        for sink in self.sinks:
            sink.rtt(seconds)

    def heartbeat_timeout(self, log: EventLog, **fields: Any) -> None:
        """A silent peer is closed 4408."""
        for sink in self.sinks:
            sink.heartbeat_timeout()
        log.info("heartbeat_timeout", **fields)

    def loop_stalled(self, lag: float, where: StallSample | None = None) -> None:
        """The event loop was blocked for ``lag`` seconds (beyond ordinary jitter); ``where``:
        the loop thread's stack during the stall, when the watchdog sampled it."""
        for sink in self.sinks:
            sink.loop_stalled(lag)
        if lag >= self.stall_threshold:
            self.log.warning(
                "event_loop_blocked",
                lag_ms=round(lag * 1000, 1),
                threshold_ms=round(self.stall_threshold * 1000, 1),
                **(where.fields() if where is not None else {}),
                hint="blocking code in an async handler? use run_in_executor or an async library",
            )

    def loop_still_blocked(self, stalled: float, where: StallSample | None) -> None:
        """The loop has been blocked for ``stalled`` seconds and still is (called from the
        watchdog thread: the log only, no sink)."""
        self.log.error(
            "event_loop_still_blocked",
            blocked_ms=round(stalled * 1000, 1),
            **(where.fields() if where is not None else {}),
            hint="the loop is blocked right now (a deadlock, or a very long blocking call)",
        )

    # -- limits ------------------------------------------------------------------------------

    def oversized(self, log: EventLog, *, size: int, limit: int) -> None:
        """An inbound message over ``max_message_size`` (closed 1009)."""
        for sink in self.sinks:
            sink.oversized()
        log.info("message_too_big", size=size, limit=limit)

    def rate_limited(self, log: EventLog, **fields: Any) -> None:
        """A client over ``rate_limit`` (closed 4429)."""
        for sink in self.sinks:
            sink.rate_limited()
        log.warning("rate_limited", **fields)

    def slow_consumer(
        self, log: EventLog, *, action: str, frames: int, dropped_before: int, **fields: Any
    ) -> None:
        """Hub frames dropped for a slow socket, or the socket closed (``action="close"``).

        Logged once when dropping starts and then every 1000 drops, never once per message.
        """
        for sink in self.sinks:
            sink.slow_consumer(action, frames)
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
        for sink in self.sinks:
            sink.evicted()
        log.warning("memory_eviction", **fields)

    # -- messaging ---------------------------------------------------------------------------

    def sent(self, kind: str) -> None:
        """A hub send was made: ``broadcast``, ``publish`` or ``send_to``."""
        for sink in self.sinks:
            sink.sent(kind)

    def fanned_out(self, kind: str, seconds: float) -> None:
        """A hub send of ``kind`` was queued for this process's sockets in ``seconds`` (timed
        only when ``sampling``)."""
        for sink in self.sinks:
            sink.fanned_out(kind, seconds)

    def sample(self, stats: dict[str, Any]) -> None:
        """``hub.stats()``, every few seconds when ``sampling`` and once at stop."""
        for sink in self.sinks:
            sink.sample(stats)

    def stopped(self) -> None:
        """The hub stopped (lifespan shutdown)."""
        for sink in self.sinks:
            sink.stopped()

    # -- the backend -------------------------------------------------------------------------

    def backend_state(self, state: str, **fields: Any) -> None:
        """The backend connected, or lost its broker and is reconnecting."""
        for sink in self.sinks:
            sink.backend_state(state)
        if state == "connected":
            self.log.info("backend_connected", **fields)
        else:
            self.log.warning("backend_reconnecting", **fields)

    def backend_dropped(self, *, count: int, **fields: Any) -> None:
        """Hub sends dropped: more were held during an outage than ``backend_buffer_size``."""
        for sink in self.sinks:
            sink.backend_dropped(count)
        self.log.warning("backend_buffer_full", dropped=count, **fields)

    def backend_gap(self, **fields: Any) -> None:
        """This process fell behind the bus further than Redis keeps it: messages were lost."""
        self.log.warning("backend_gap", **fields)
