"""The hub: the process-wide side of the middleware.

It owns the registry, the admission rules, the heartbeat scheduler, the loop-lag monitor, the
counters and the log. Build one yourself to reach it from background tasks::

    hub = Hub(StabilizerSettings(heartbeat_interval=5))
    app.add_middleware(StabilizerMiddleware, hub=hub)

Its services start with the app's lifespan, or lazily on the first connection when the server
sends no lifespan, and are bound to the running event loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .admission import Admission, Handshake, Refusal
from .clock import LoopLagMonitor
from .log import EventLog
from .registry import Registry
from .scheduler import HeartbeatScheduler
from .settings import (
    SettingsOverrides,
    StabilizerSettings,
    Unpack,
    load_settings,
    unknown_env_vars,
)
from .stats import Stats, Traffic

if TYPE_CHECKING:
    from .connection import Connection


class Hub:
    """Registry, heartbeat, admission and statistics for every connection of one process."""

    def __init__(
        self, settings: StabilizerSettings | None = None, **overrides: Unpack[SettingsOverrides]
    ) -> None:
        """Build a hub from ``settings``, or from the environment plus ``overrides``.

        Raises:
            SettingsError: a setting has a bad value; the message names its env var.
        """
        if settings is not None and overrides:
            settings = load_settings(**{**settings.model_dump(), **overrides})
        self.settings = settings if settings is not None else load_settings(**overrides)
        self.log = EventLog(self.settings.log_level)
        self.counters = Stats()
        self.admission = Admission(self.settings)
        self.registry: Registry[Connection] = Registry()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lag: LoopLagMonitor | None = None
        self._heartbeats: HeartbeatScheduler | None = None
        self._admission_paused: int | None = None
        for name in unknown_env_vars():
            self.log.warning("unknown_setting_env_var", env_var=name)

    def __repr__(self) -> str:
        return f"<Hub connections={len(self.registry)} running={self.running}>"

    # -- services ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the hub's services run on the current loop."""
        return self._lag is not None and self._lag.running

    def ensure_started(self) -> None:
        """Start the services on the running loop (idempotent; restarts on a new loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self.running:
            return
        self._stop_services()
        self._loop = loop
        self._lag = LoopLagMonitor(loop, self._loop_stalled)
        self._lag.start()
        self._heartbeats = HeartbeatScheduler(loop, self._lag, self.registry.get, self.log)
        for connection in self.registry:
            if connection.accepted_at is not None and connection.hub.settings.heartbeat_enabled:
                self._heartbeats.add(
                    connection.connection_id, self.clock_now() + connection.heartbeat.interval
                )

    async def start(self) -> None:
        """Start the services (lifespan startup)."""
        self.ensure_started()

    async def stop(self) -> None:
        """Stop the services (lifespan shutdown). Open sockets stay open, without heartbeat."""
        self._stop_services()

    def _stop_services(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.stop()
            self._heartbeats = None
        if self._lag is not None:
            self._lag.stop()
            self._lag = None

    def clock_now(self) -> float:
        """Seconds on the lag-adjusted clock that heartbeat deadlines use."""
        if self._lag is None:
            return asyncio.get_running_loop().time()
        return self._lag.now()

    def _loop_stalled(self, lag: float) -> None:
        self.counters.loop_stalls += 1
        self.counters.loop_max_stall = max(self.counters.loop_max_stall, lag)
        if lag >= self.settings.loop_stall_threshold:
            self.log.warning(
                "event_loop_blocked",
                lag_ms=round(lag * 1000, 1),
                threshold_ms=round(self.settings.loop_stall_threshold * 1000, 1),
                hint="blocking code in an async handler? use run_in_executor or an async library",
            )

    # -- admission ---------------------------------------------------------------------------

    @property
    def admitting(self) -> bool:
        """Whether new connections are admitted (see ``pause_admission``)."""
        return self._admission_paused is None

    def pause_admission(self) -> None:
        """Refuse new connections with 503 and ``Retry-After`` until ``resume_admission``."""
        self._admission_paused = self.settings.retry_after

    def resume_admission(self) -> None:
        """Admit new connections again."""
        self._admission_paused = None

    def admit(self, connection: Connection, handshake: Handshake) -> Refusal | None:
        """Check ``connection`` and register it, with no ``await`` in between."""
        refusal = self.admission.check(
            handshake,
            total=len(self.registry),
            per_ip=self.registry.count_ip(connection.remote_ip),
            per_client=(
                self.registry.count_client(connection.client_id)
                if handshake.client_id is not None
                else 0
            ),
            draining=not self.admitting,
        )
        if refusal is not None:
            self.counters.rejected[refusal.reason] += 1
            self.log.info(
                "connection_rejected",
                reason=refusal.reason,
                status=refusal.status,
                remote_ip=connection.remote_ip,
                client_id=handshake.client_id,
                origin=handshake.origin,
                path=connection.path,
            )
            return refusal
        self.registry.add(connection)
        return None

    # -- connection events ------------------------------------------------------------------

    def _opened(self, connection: Connection) -> None:
        self.counters.accepted += 1
        connection.log.info(
            "connection_opened",
            client_id=connection.client_id,
            remote_ip=connection.remote_ip,
            path=connection.path,
        )

    def _watch(self, connection: Connection, deadline: float) -> None:
        self.ensure_started()
        if self._heartbeats is not None:
            self._heartbeats.add(connection.connection_id, deadline)

    def _finished(self, connection: Connection, *, accepted: bool) -> None:
        self.registry.remove(connection)
        if self._heartbeats is not None:
            self._heartbeats.remove(connection.connection_id)
        if not accepted:
            return
        self.counters.finished_traffic.add(connection.traffic)
        code = connection.close_code if connection.close_code is not None else 1006
        self.counters.closes[code] += 1
        self.counters.closed_by[connection.closed_by or "unknown"] += 1
        t = connection.traffic
        connection.log.info(
            "connection_closed",
            client_id=connection.client_id,
            code=code,
            reason=connection.close_reason,
            closed_by=connection.closed_by,
            duration_s=round(time.monotonic() - (connection.accepted_at or 0.0), 3),
            messages_in=t.messages_in,
            messages_out=t.messages_out,
            bytes_in=t.bytes_in,
            bytes_out=t.bytes_out,
        )

    # -- queries ----------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Sockets registered in this process (admitted and not yet gone)."""
        return len(self.registry)

    def client_ids(self) -> list[str]:
        """Client ids with at least one registered socket."""
        return self.registry.client_ids()

    def stats(self) -> dict[str, Any]:
        """Counters since start: connections, accepted, rejected by reason, closes by code,
        messages and bytes each way, heartbeat timeouts, round-trip times, loop stalls."""
        live = Traffic()
        for connection in self.registry:
            live.add(connection.traffic)
        return self.counters.snapshot(len(self.registry), live)
