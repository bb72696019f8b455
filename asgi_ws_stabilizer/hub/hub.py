"""The hub: the public API of the process-wide side, built from its services.

Build one yourself to reach it from background tasks::

    hub = Hub(StabilizerSettings(heartbeat_interval=5))
    app.add_middleware(StabilizerMiddleware, hub=hub)

It builds the services every connection shares (hub/services.py), the session binding
(hub/sessions.py), this process's delivery of hub sends (hub/messaging.py) and the backend that
carries them (backends/), and offers them as one API. Its timers start with the app's lifespan,
or lazily on the first connection when the server sends no lifespan.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ..aio.connection import Connection
from ..aio.keepalive import advice, find_keepalive
from ..aio.signals import SignalDrain
from ..backends.base import Backend, Presence
from ..backends.select import open_backend
from ..codes import CloseCode
from ..config.settings import (
    SettingsOverrides,
    StabilizerSettings,
    Unpack,
    load_settings,
    unknown_env_vars,
)
from ..core.admission import Admission
from ..core.delivery import EVERYONE, BroadcastResult, Exclude, Target, check_group, exclusion
from ..core.drain import ShutdownReport
from ..core.memory import Meter
from ..core.messages import OutboundMessage, encode
from ..core.registry import Registry
from ..observe.events import Events
from ..observe.log import EventLog
from ..observe.metrics import metrics_sinks
from ..observe.stats import Stats
from ..observe.traffic import Traffic
from ..resume.resumption import Resumption
from .drain import drain
from .handle import ConnectionView
from .messaging import Messaging
from .registration import Registration
from .services import Services
from .sessions import SessionBinder
from .shared_sessions import SharedSessionBinder


class ConnectionHandle(ConnectionView):
    """The app's handle on one WebSocket connection (``websocket.state.stabilizer``)."""

    __slots__ = ("_hub",)

    def __init__(self, connection: Connection, hub: Hub) -> None:
        # ConnectionView.__init__, inlined: one handle per socket.
        self._connection = connection
        self._actions = hub
        self._hub = hub

    @property
    def hub(self) -> Hub:
        """The process-wide hub."""
        return self._hub


ConnectHook = Callable[[ConnectionHandle], Awaitable[None] | None]
"""``on_connect(handle)``, sync or async, run right after accept."""
DisconnectHook = Callable[[ConnectionHandle, int, str, str], Awaitable[None] | None]
"""``on_disconnect(handle, code, reason, closed_by)``, sync or async."""


class Hub:
    """Registry, heartbeat, admission, messaging and statistics for one process's sockets."""

    def __init__(
        self,
        settings: StabilizerSettings | None = None,
        *,
        on_connect: ConnectHook | None = None,
        on_disconnect: DisconnectHook | None = None,
        **overrides: Unpack[SettingsOverrides],
    ) -> None:
        """Build a hub from ``settings``, or from the environment plus ``overrides``.

        Args:
            settings: settings built beforehand; ``overrides`` still apply on top.
            on_connect: called with the handle right after each accept.
            on_disconnect: called with the handle, close code, reason and who closed
                (``client``, ``app`` or ``middleware``) when a connection ends.

        Raises:
            SettingsError: a setting has a bad value; the message names its env var.
        """
        if settings is not None and overrides:
            settings = load_settings(**{**settings.model_dump(), **overrides})
        self.settings = settings if settings is not None else load_settings(**overrides)
        self.log = EventLog(self.settings.log_level)
        self.counters = Stats()
        """The counters behind ``stats()``: the events' first sink (Prometheus the second, with
        ``enable_metrics``)."""
        self.events = Events(
            self.log,
            [self.counters, *metrics_sinks(self.settings.enable_metrics)],
            stall_threshold=self.settings.loop_stall_threshold,
            log_connections=self.settings.log_connections,
        )
        """Where everything that happens is reported: the log and the sinks."""
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.registry: Registry[Connection] = Registry()
        self.meter = Meter()
        self.backend: Backend = open_backend(self.settings, self.events)
        """Carries hub sends to every process, answers for presence, keeps the sessions."""
        self.resumption = Resumption(self.settings, self.backend.sessions)
        shared = self.backend.shared_sessions
        self.sessions: SessionBinder = (
            SessionBinder(self.resumption, self.registry, self.log, self.events)
            if shared is None
            else SharedSessionBinder(
                self.resumption, self.registry, self.log, self.events, shared, self.settings
            )
        )
        self.registration = Registration(
            Admission(self.settings), self.registry, self.sessions, self.events
        )
        """Admits sockets into the registry, and files them under their client id."""
        self.services = Services(
            self.settings,
            self.log,
            self.events,
            self.sessions,
            self.registry,
            self.meter,
            self,
        )
        """What every connection shares: the ``HubPort`` each one holds."""
        self.messaging = Messaging(
            self.settings, self.registry, self.backend.sessions, self.services
        )
        self.backend.bind(self.messaging, self.registry)
        self.presence: Presence = self.backend.presence
        """Who is connected: async ``count()``, ``client_ids()``, ``group_members(group)``,
        ``group_size(group)``, ``is_online(client_id)``; cluster-wide with a Redis backend."""
        self._handles: dict[str, ConnectionHandle] = {}
        """The handle of each registered socket, by connection id."""
        self._signals: SignalDrain | None = None
        self._backend_started = False
        for name in unknown_env_vars():
            self.log.warning("unknown_setting_env_var", env_var=name)

    def __repr__(self) -> str:
        return f"<Hub connections={len(self.registry)} running={self.running}>"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the hub's timers run on the current loop."""
        return self.services.running

    def ensure_started(self) -> None:
        """Start the timers on the running loop (idempotent; restarts on a new loop), and the
        backend if the lifespan has not (servers without one)."""
        if self.services.ensure_started():
            self.messaging.new_loop()
        if not self._backend_started:
            self._backend_started = True
            self.services.spawn(self.backend.start(), "backend")

    async def start(self) -> None:
        """Start the services (lifespan startup), and chain the drain in front of the server's
        SIGTERM/SIGINT handling when ``drain_on_signal`` is on."""
        self._backend_started = True
        await self.backend.start()
        self.ensure_started()
        self._check_keepalive()
        if self.settings.drain_on_signal and self._signals is None:
            self._signals = SignalDrain(asyncio.get_running_loop(), self.drain)
            found = self._signals.install()
            self.log.debug("drain_on_signal", handlers=found)

    def _check_keepalive(self) -> None:
        """Warn when plain clients would have no liveness check at all (see keepalive.py)."""
        settings = self.settings
        if settings.heartbeat_enabled and settings.heartbeat_clients == "all":
            return  # every client gets the text heartbeat
        keepalive = find_keepalive(asyncio.get_running_loop())
        hint = advice(keepalive)
        if hint is not None:
            self.log.warning("plain_clients_unwatched", server=keepalive.server, hint=hint)
        else:
            self.log.debug(
                "server_keepalive",
                server=keepalive.server,
                interval=keepalive.interval,
                timeout=keepalive.timeout,
            )

    async def stop(self) -> None:
        """Stop the services (lifespan shutdown). Open sockets stay open, without heartbeat."""
        if self._signals is not None:
            self._signals.uninstall()
            self._signals = None
        self.services.stop()
        await self.backend.aclose()
        self._backend_started = False
        if self.events.sampling:
            self.sample()  # the last copy for the metrics
        self.events.stopped()

    async def drain(
        self,
        *,
        code: int = CloseCode.SERVICE_RESTART,
        reason: str = "server restarting",
        timeout: float | None = None,
        spread: float | None = None,
    ) -> ShutdownReport:
        """Empty this process gracefully.

        Stops admitting (503 + ``Retry-After``), sends each opted-in client a ``drain`` control
        frame with its own ``retry_after_ms`` (spread over ``spread`` seconds, default
        ``drain_spread``) and a fresh resume token, closes every socket with ``code`` and
        ``reason`` at most ``max_concurrent_cleanup`` at a time, and waits up to ``timeout``
        (default ``drain_timeout``) for the handlers to finish.
        """
        self.pause_admission()
        return await drain(
            self.services,
            code=code,
            reason=reason,
            timeout=self.settings.drain_timeout if timeout is None else timeout,
            spread=self.settings.drain_spread if spread is None else spread,
        )

    # -- admission --------------------------------------------------------------------------

    @property
    def admitting(self) -> bool:
        """Whether new connections are admitted (see ``pause_admission``)."""
        return self.registration.admitting

    def pause_admission(self) -> None:
        """Refuse new connections with 503 and ``Retry-After`` until ``resume_admission``."""
        self.registration.admitting = False

    def resume_admission(self) -> None:
        """Admit new connections again."""
        self.registration.admitting = True

    async def identify(self, connection: Connection, client_id: str) -> None:
        """File ``connection`` under the client id the app established (see
        ``ConnectionHandle.identify``)."""
        await self.registration.identify(connection, client_id)

    def resume_token(self, connection: Connection) -> str:
        """A fresh resume token for an opted-in connection's session."""
        return self.sessions.token(connection)

    # -- the app's hooks (Services calls them) ----------------------------------------------

    def handle(self, connection: Connection) -> ConnectionHandle:
        """The public handle on ``connection`` (the same one for its whole life)."""
        handle = self._handles.get(connection.connection_id)
        if handle is None:
            handle = self._handles[connection.connection_id] = ConnectionHandle(connection, self)
        return handle

    async def connected(self, connection: Connection) -> None:
        """Run ``on_connect`` with the handle; an error in it is logged, never raised."""
        hook = self.on_connect
        if hook is None:
            return
        try:
            result = hook(self.handle(connection))
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            connection.log.error("hook_error", hook="on_connect", exc_info=exc)

    def ended(self, connection: Connection, code: int | None) -> None:
        """Run ``on_disconnect`` for an accepted socket (an async one as a task of its own)."""
        handle = self._handles.pop(connection.connection_id, None)
        hook = self.on_disconnect
        if hook is None or code is None:
            return
        try:
            result = hook(
                handle or ConnectionHandle(connection, self),
                code,
                connection.close_reason,
                connection.closed_by or "",
            )
            if inspect.isawaitable(result):
                self.services.spawn(_guarded(result, connection), "hook")
        except Exception as exc:
            connection.log.error("hook_error", hook="on_disconnect", exc_info=exc)

    # -- messaging --------------------------------------------------------------------------

    async def broadcast(
        self, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult:
        """Queue ``message`` for every open socket but the excluded ones, never awaiting one.

        ``exclude`` takes connection ids, client ids or handles. Returns what happened.
        """
        result = await self.backend.publish(EVERYONE, encode(message), exclusion(exclude))
        self.events.sent("broadcast")
        return result

    async def publish(
        self, group: str, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult:
        """Queue ``message`` for every socket in ``group`` but the excluded ones."""
        target = Target("group", check_group(group))
        result = await self.backend.publish(target, encode(message), exclusion(exclude))
        self.events.sent("publish")
        return result

    async def send_to(self, client_id: str, message: OutboundMessage) -> int:
        """Queue ``message`` for every socket of ``client_id``; returns how many took it."""
        target = Target("client", client_id)
        result = await self.backend.publish(target, encode(message), frozenset())
        self.events.sent("send_to")
        return result.queued

    async def close(self, client_id: str, code: int = 1000, reason: str = "") -> int:
        """Close every socket of ``client_id``; returns how many were closed."""
        return await self.backend.close(client_id, code, reason)

    async def join(self, connection: Connection, group: str) -> bool:
        """Add a connection to ``group``; ``False`` if it is closed or already a member."""
        return self.registry.join(connection, check_group(group))

    async def leave(self, connection: Connection, group: str) -> bool:
        """Take a connection out of ``group``; ``False`` if it was not a member."""
        return self.registry.leave(connection, check_group(group))

    def group_members(self, group: str) -> list[str]:
        """Client ids with a socket in ``group`` (each once, sorted)."""
        return sorted({c.client_id for c in self.registry.members(check_group(group))})

    def group_size(self, group: str) -> int:
        """Sockets in ``group``."""
        return len(self.registry.members(check_group(group)))

    def groups(self) -> dict[str, int]:
        """Every non-empty group and its number of sockets."""
        return self.registry.group_sizes()

    # -- queries ----------------------------------------------------------------------------

    def memory_usage(self, top: int = 10) -> dict[str, Any]:
        """Bytes held by kind (user data measured afresh) and the ``top`` largest connections."""
        return self.services.guard.usage(self.backend.sessions, top)

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
        return {
            **self.counters.snapshot(len(self.registry), live),
            "admitting": self.admitting,
            "backend": self.backend.describe(),
        }

    def sample(self) -> None:
        """Hand ``stats()`` to the sinks that copy from it (the metrics, every few seconds)."""
        self.events.sample(self.stats())

    def clock_now(self) -> float:
        """Seconds on the lag-adjusted clock that heartbeat deadlines use."""
        return self.services.clock_now()


async def _guarded(awaitable: Awaitable[Any], connection: Connection) -> None:
    try:
        await awaitable
    except Exception as exc:
        connection.log.error("hook_error", hook="on_disconnect", exc_info=exc)
