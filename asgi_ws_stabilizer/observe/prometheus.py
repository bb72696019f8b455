"""Prometheus metrics: a sink of the events (``enable_metrics``, extra ``[prometheus]``).

Imported only when ``enable_metrics`` is on (observe/metrics.py), so an app without it never loads
prometheus-client. The metric objects are made once per process, in the default registry, and
shared by every hub of the process: apps that already serve ``/metrics`` (starlette-exporter,
prometheus-fastapi-instrumentator) show them with no code, and ``metrics_route()`` serves them for
the others.

Label values never come from client input: close codes outside ``CLOSE_CODES`` are ``other``,
and every other label takes one of a fixed list, each value created at 0 when the metric is made.

Events are observed as they happen; the per-message counts (messages and bytes each way, kept
per connection on the hot path) and the backend's gauges are copied from ``hub.stats()`` every
``SAMPLE_EVERY`` seconds (observe/events.py; ``sample``), so a message costs nothing more with
metrics on.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client keeps every value in a file of its process;
the gauges that describe live processes (open connections, admitting, the backend's state) count
only the files of processes alive (``livesum``). A process that stops cleanly removes its own
(``stopped``); the files of a killed one are removed at the next start-up of a hub and at each
scrape through ``metrics_route()`` (``forget_dead_processes``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ..codes import CloseCode
from ..core.admission import REFUSAL_REASONS
from ..resume.resumption import RESUME_REASONS
from .sink import Sink
from .traffic import Traffic

NAMESPACE = "asgi_ws"

CLOSE_CODES = tuple(sorted({int(code) for code in CloseCode} | {1005, 1006}))
"""Close codes that get their own label value; any other is ``other``."""
CLOSED_BY = ("client", "app", "middleware", "unknown")
REJECT_REASONS = (*REFUSAL_REASONS, "other")
RESUME_RESULTS = ("resumed", *RESUME_REASONS, "other")
SEND_KINDS = ("broadcast", "publish", "send_to")
DROP_POLICIES = ("drop_oldest", "drop_newest")
DIRECTIONS = ("in", "out")

_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")


def close_label(code: int) -> str:
    """The ``code`` label of a close code: itself if known, else ``other``."""
    return str(code) if code in CLOSE_CODES else "other"


class Metrics:
    """The metric objects (one set per process, see ``metrics()``)."""

    def __init__(self) -> None:
        ns = NAMESPACE
        self.connections = Gauge(
            "connections", "Open WebSocket connections.", namespace=ns, multiprocess_mode="livesum"
        )
        self.accepted = Counter(
            "connections_accepted", "WebSocket handshakes accepted.", namespace=ns
        )
        self.rejected = Counter(
            "connections_rejected",
            "Handshakes (or identify() calls) refused, by reason.",
            ["reason"],
            namespace=ns,
        )
        self.closed = Counter(
            "connections_closed",
            "Accepted connections that ended, by close code (unknown codes: other) and by who "
            "closed (client, app, middleware, unknown).",
            ["code", "closed_by"],
            namespace=ns,
        )
        self.duration = Histogram(
            "connection_duration_seconds",
            "How long accepted connections lasted.",
            namespace=ns,
            buckets=(0.1, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400),
        )
        self.messages = Counter(
            "messages",
            "Data messages, by direction (in: from clients).",
            ["direction"],
            namespace=ns,
        )
        self.payload_bytes = Counter(
            "payload_bytes",
            "Payload bytes of data messages, by direction.",
            ["direction"],
            namespace=ns,
        )
        self.pings = Counter("heartbeat_pings", "Heartbeat pings sent.", namespace=ns)
        self.timeouts = Counter("heartbeat_timeouts", "Silent peers closed 4408.", namespace=ns)
        self.rtt = Histogram(
            "heartbeat_rtt_seconds",
            "Heartbeat round-trip times.",
            namespace=ns,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.oversized = Counter(
            "oversized_messages",
            "Inbound messages over max_message_size (closed 1009).",
            namespace=ns,
        )
        self.app_errors = Counter(
            "app_errors", "Handlers that raised after accept (closed 1011).", namespace=ns
        )
        self.rate_limited = Counter(
            "rate_limited", "Clients over rate_limit (closed 4429).", namespace=ns
        )
        self.evictions = Counter(
            "memory_evictions", "Sockets shed for max_total_memory (closed 1013).", namespace=ns
        )
        self.slow_dropped = Counter(
            "slow_consumer_dropped_messages",
            "Hub messages dropped for slow consumers, by slow_consumer_policy.",
            ["policy"],
            namespace=ns,
        )
        self.slow_closes = Counter(
            "slow_consumer_closes",
            "Slow consumers closed 1013 (slow_consumer_policy=close).",
            namespace=ns,
        )
        self.sends = Counter(
            "sends", "Hub sends made by this process, by kind.", ["kind"], namespace=ns
        )
        self.fanout = Histogram(
            "fanout_duration_seconds",
            "Time to queue one hub send for this process's sockets, by kind.",
            ["kind"],
            namespace=ns,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.resumes = Counter(
            "session_resumes",
            "Resumes asked for, by result (resumed, or why refused).",
            ["result"],
            namespace=ns,
        )
        self.stalls = Histogram(
            "event_loop_stall_seconds",
            "Event loop stalls (lag beyond jitter).",
            namespace=ns,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.backend_connected = Gauge(
            "backend_connected",
            "Processes whose backend is connected to its broker (1 per process).",
            namespace=ns,
            multiprocess_mode="livesum",
        )
        self.backend_reconnects = Counter(
            "backend_reconnects", "Reconnections to the broker after it went away.", namespace=ns
        )
        self.backend_buffered = Gauge(
            "backend_buffered_bytes",
            "Payload bytes of hub sends held while the broker is away.",
            namespace=ns,
            multiprocess_mode="livesum",
        )
        self.backend_dropped = Counter(
            "backend_dropped_messages",
            "Hub sends dropped past backend_buffer_size while the broker was away.",
            namespace=ns,
        )
        self.admitting = Gauge(
            "admitting",
            "Processes admitting new connections (1 per process; 0 while draining).",
            namespace=ns,
            multiprocess_mode="livesum",
        )
        self.build_info = Gauge(
            "build_info",
            "The version running.",
            ["version"],
            namespace=ns,
            multiprocess_mode="livemax",
        )
        self._create_labels()

    def _create_labels(self) -> None:
        """Every fixed label value at 0, so that rates and sums start from a series; each child
        is kept, so that an event finds it with one dict lookup."""
        codes = (*map(str, CLOSE_CODES), "other")
        self.rejected_by = {r: self.rejected.labels(r) for r in REJECT_REASONS}
        self.closed_by = {(c, b): self.closed.labels(c, b) for c in codes for b in CLOSED_BY}
        self.messages_by = {d: self.messages.labels(d) for d in DIRECTIONS}
        self.bytes_by = {d: self.payload_bytes.labels(d) for d in DIRECTIONS}
        self.dropped_by = {p: self.slow_dropped.labels(p) for p in DROP_POLICIES}
        self.sends_by = {k: self.sends.labels(k) for k in SEND_KINDS}
        self.fanout_by = {k: self.fanout.labels(k) for k in SEND_KINDS}
        self.resumes_by = {r: self.resumes.labels(r) for r in RESUME_RESULTS}
        try:
            running = version("asgi_ws_stabilizer")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            running = "unknown"
        self.build_info.labels(running).set(1)


_metrics: Metrics | None = None


def metrics() -> Metrics:
    """This process's metric objects, made (and registered) on first use; the files of dead
    processes are forgotten first in multiprocess mode."""
    global _metrics
    if _metrics is None:
        forget_dead_processes()
        _metrics = Metrics()
    return _metrics


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR``, if set (prometheus-client's multiprocess mode)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def forget_dead_processes() -> list[int]:
    """In multiprocess mode, remove the live-gauge files of processes that no longer run (a
    worker killed by SIGKILL never removes its own); the pids forgotten."""
    directory = multiprocess_dir()
    if not directory:
        return []
    names = (os.path.basename(p) for p in glob.glob(os.path.join(directory, "gauge_live*.db")))
    pids = {int(found.group(1)) for found in map(_LIVE_FILE.search, names) if found is not None}
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        with contextlib.suppress(FileNotFoundError):  # another worker removed it first
            _forget(pid, directory)
    return dead


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus's text format, and its content type. In multiprocess mode the
    sum of every worker's files (the live gauges of dead workers forgotten first), so that a
    scrape of any worker answers for all of them; else this process's default registry."""
    directory = multiprocess_dir()
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_processes()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget(pid: int, directory: str) -> None:
    """Remove the live-gauge files of ``pid`` (prometheus-client's own bookkeeping)."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class PrometheusSink(Sink):
    """Feeds one hub's events into this process's metrics."""

    __slots__ = ("_backend_state", "_m", "_reported")
    samples = True

    def __init__(self) -> None:
        self._m = metrics()
        self._reported = Traffic()
        """The per-message counts copied so far (from ``hub.stats()``)."""
        self._backend_state = "connecting"

    def opened(self) -> None:
        self._m.accepted.inc()
        self._m.connections.inc()

    def closed(self, code: int, closed_by: str | None, duration: float, traffic: Traffic) -> None:
        m = self._m
        m.connections.dec()
        by = closed_by if closed_by in CLOSED_BY else "unknown"
        m.closed_by[close_label(code), by].inc()
        m.duration.observe(duration)

    def rejected(self, reason: str) -> None:
        rejected = self._m.rejected_by
        (rejected.get(reason) or rejected["other"]).inc()

    def app_error(self) -> None:
        self._m.app_errors.inc()

    def ping_sent(self) -> None:
        self._m.pings.inc()

    def rtt(self, seconds: float) -> None:
        self._m.rtt.observe(seconds)

    def heartbeat_timeout(self) -> None:
        self._m.timeouts.inc()

    def loop_stalled(self, lag: float) -> None:
        self._m.stalls.observe(lag)

    def oversized(self) -> None:
        self._m.oversized.inc()

    def rate_limited(self) -> None:
        self._m.rate_limited.inc()

    def slow_consumer(self, action: str, frames: int) -> None:
        if action == "close":
            self._m.slow_closes.inc()
        elif action in DROP_POLICIES:
            self._m.dropped_by[action].inc(frames)

    def evicted(self) -> None:
        self._m.evictions.inc()

    def sent(self, kind: str) -> None:
        if kind in SEND_KINDS:
            self._m.sends_by[kind].inc()

    def fanned_out(self, kind: str, seconds: float) -> None:
        if kind in SEND_KINDS:
            self._m.fanout_by[kind].observe(seconds)

    def resumed(self, result: str) -> None:
        resumes = self._m.resumes_by
        (resumes.get(result) or resumes["other"]).inc()

    def backend_state(self, state: str) -> None:
        if state == "connected" and self._backend_state == "reconnecting":
            self._m.backend_reconnects.inc()
        self._backend_state = state
        self._m.backend_connected.set(1 if state == "connected" else 0)

    def backend_dropped(self, count: int) -> None:
        self._m.backend_dropped.inc(count)

    def sample(self, stats: Mapping[str, Any]) -> None:
        """Copy the per-message counts (what grew since the last copy) and the gauges."""
        m, reported = self._m, self._reported
        # A frame counted when queued and then dropped from a slow consumer's outbox lowers
        # the count again: a counter only takes what exceeds the highest count copied.
        for name, counter in (
            ("messages_in", m.messages_by["in"]),
            ("messages_out", m.messages_by["out"]),
            ("bytes_in", m.bytes_by["in"]),
            ("bytes_out", m.bytes_by["out"]),
        ):
            grew = int(stats[name]) - getattr(reported, name)
            if grew > 0:
                counter.inc(grew)
                setattr(reported, name, getattr(reported, name) + grew)
        m.admitting.set(1 if stats.get("admitting", True) else 0)
        backend = stats.get("backend") or {}
        m.backend_connected.set(1 if backend.get("state") == "connected" else 0)
        m.backend_buffered.set(float(backend.get("buffered", 0)))

    def stopped(self) -> None:
        """The hub stopped (lifespan shutdown: the process is ending): in multiprocess mode its
        live gauges stop counting now rather than at the next start-up or scrape."""
        directory = multiprocess_dir()
        if directory:
            _forget(os.getpid(), directory)
