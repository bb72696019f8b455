"""The sink interface: what a consumer of events (the counters, metrics) may take.

``Events`` (observe/events.py) calls every sink once per event, with plain values (codes, reasons,
seconds, byte counts), never with client input that has not been bounded (no client id, IP,
origin or path), so a metrics sink can use them as labels. A sink overrides what it needs; the
rest do nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .traffic import Traffic


class Sink:
    """Receives every event of a hub; each method does nothing unless overridden."""

    __slots__ = ()
    samples: ClassVar[bool] = False
    """Whether ``sample`` wants ``hub.stats()`` every few seconds (a timer runs only then)."""

    def opened(self) -> None:
        """A socket was accepted."""

    def closed(self, code: int, closed_by: str | None, duration: float, traffic: Traffic) -> None:
        """An accepted socket ended with ``code`` after ``duration`` seconds."""

    def rejected(self, reason: str) -> None:
        """A handshake (or an ``identify()``) was refused for ``reason``."""

    def app_error(self) -> None:
        """The handler raised after accept (closed 1011)."""

    def ping_sent(self) -> None:
        """A heartbeat ping went out."""

    def rtt(self, seconds: float) -> None:
        """A heartbeat round trip completed (one sample per pong)."""

    def heartbeat_timeout(self) -> None:
        """A silent peer was closed 4408."""

    def loop_stalled(self, lag: float) -> None:
        """The event loop was blocked for ``lag`` seconds."""

    def oversized(self) -> None:
        """An inbound message over ``max_message_size`` (closed 1009)."""

    def rate_limited(self) -> None:
        """A client over ``rate_limit`` (closed 4429)."""

    def slow_consumer(self, action: str, frames: int) -> None:
        """``frames`` hub frames dropped (``drop_oldest``/``drop_newest``) or a socket closed."""

    def evicted(self) -> None:
        """A socket shed for ``max_total_memory`` (closed 1013)."""

    def sent(self, kind: str) -> None:
        """A hub send: ``broadcast``, ``publish`` or ``send_to``."""

    def fanned_out(self, kind: str, seconds: float) -> None:
        """A hub send of ``kind`` took ``seconds`` to queue for this process's sockets."""

    def resumed(self, result: str) -> None:
        """A resume was asked for: ``resumed``, or why it was refused (``RESUME_REASONS``)."""

    def backend_state(self, state: str) -> None:
        """The backend is now ``connected`` or ``reconnecting``."""

    def backend_dropped(self, count: int) -> None:
        """``count`` hub sends dropped past ``backend_buffer_size`` while the broker was away."""

    def sample(self, stats: Mapping[str, Any]) -> None:
        """``hub.stats()`` (with ``admitting``), every few seconds if ``samples`` and at stop."""

    def stopped(self) -> None:
        """The hub stopped (lifespan shutdown)."""
