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
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from starlette.types import Message

from .admission import Admission, Handshake, Refusal, check_client_id
from .clock import LoopLagMonitor
from .codes import CLOSE_TIMEOUT, CloseCode
from .drain import ShutdownReport, SignalDrain, spread_delays
from .errors import InvalidGroupError, StateError
from .events import Events
from .fanout import BroadcastResult, Exclude, exclusion, fan_out
from .keepalive import advice, find_keepalive
from .log import EventLog
from .memory import Meter
from .messages import OutboundMessage, encode, payload_size
from .registry import Registry
from .resume import Binding, Plan, Resumption, control_frame
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
    from .handle import ConnectionHandle
    from .sessions import Session

ConnectHook = Callable[["ConnectionHandle"], Awaitable[None] | None]
"""``on_connect(handle)``, sync or async, run right after accept."""
DisconnectHook = Callable[["ConnectionHandle", int, str, str], Awaitable[None] | None]
"""``on_disconnect(handle, code, reason, closed_by)``, sync or async."""

MAX_GROUP_NAME = 256
READER_CHECK_DELAY = 0.01
"""Seconds after which a socket whose app has not come back to receive() gets a pump."""


class Hub:
    """Registry, heartbeat, admission and statistics for every connection of one process."""

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
        self.events = Events(
            self.log, self.counters, stall_threshold=self.settings.loop_stall_threshold
        )
        """Where everything that happens is reported: the log and the counters."""
        self.admission = Admission(self.settings)
        self.registry: Registry[Connection] = Registry()
        self.meter = Meter()
        self.ping_frame = {"type": "websocket.send", "text": self.settings.ping_message}
        self.pong_frame = {"type": "websocket.send", "text": self.settings.pong_message}
        self.pong_size = payload_size(self.pong_frame)
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self._background: set[asyncio.Task[Any]] = set()
        self._broadcast_slots = asyncio.Semaphore(self.settings.max_concurrent_broadcast)
        self._cleanup_slots = asyncio.Semaphore(self.settings.max_concurrent_cleanup)
        self._evicting = False
        self.resumption = Resumption(self.settings)
        self._warned_random_key = False
        self._session_sweep: asyncio.TimerHandle | None = None
        self._signals: SignalDrain | None = None
        self._emptied: asyncio.Event | None = None
        self._unread: set[Connection] = set()
        self._reader_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lag: LoopLagMonitor | None = None
        self._heartbeats: HeartbeatScheduler | None = None
        self._admission_paused = False
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
        if self._loop is not None and self._loop is not loop:
            # asyncio primitives bind to the first loop that waits on them.
            self._broadcast_slots = asyncio.Semaphore(self.settings.max_concurrent_broadcast)
            self._cleanup_slots = asyncio.Semaphore(self.settings.max_concurrent_cleanup)
        self._loop = loop
        self._lag = LoopLagMonitor(loop, self.events.loop_stalled)
        self._lag.start()
        self._heartbeats = HeartbeatScheduler(loop, self._lag, self.registry.get, self.log)
        self._sweep_sessions()
        for connection in self.registry:
            if connection.accepted_at is not None and connection.beating:
                self._heartbeats.add(
                    connection.connection_id, self.clock_now() + connection.heartbeat.interval
                )

    async def start(self) -> None:
        """Start the services (lifespan startup), and chain the drain in front of the server's
        SIGTERM/SIGINT handling when ``drain_on_signal`` is on."""
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
        self._stop_services()

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
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = self.settings.drain_timeout if timeout is None else timeout
        spread = self.settings.drain_spread if spread is None else spread
        self.pause_admission()
        from .connection import State

        targets = [c for c in self.registry if c.state is State.OPEN]
        opted = [c for c in targets if c.session is not None]
        notified = 0
        for connection, delay in zip(opted, spread_delays(len(opted), spread), strict=True):
            assert connection.session is not None
            frame = control_frame(
                "drain",
                retry_after_ms=delay,
                token=self.resumption.token(connection.session, time.time()),
            )
            if connection.gate.send_nowait(frame, payload_size(frame)):
                notified += 1
        closing = [c for c in targets if c.drain_close(code, reason)]
        self.log.info("drain_started", sockets=len(closing), notified=notified, code=code)
        deadline = started + timeout
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._send_closes(closing), max(0.0, deadline - loop.time()))
            if len(self.registry):
                self._emptied = asyncio.Event()
                await asyncio.wait_for(self._emptied.wait(), max(0.0, deadline - loop.time()))
        report = ShutdownReport(
            closed=sum(1 for c in closing if c.gate.close_written),
            failed=sum(1 for c in closing if not c.gate.close_written),
            timed_out=len(self.registry),
            notified=notified,
            duration=round(loop.time() - started, 3),
        )
        self.log.info("drain_finished", **vars(report))
        return report

    def _sweep_sessions(self) -> None:
        expired = self.resumption.store.expire(time.time())
        if expired:
            self.log.debug("sessions_expired", count=expired)
        self._session_sweep = asyncio.get_running_loop().call_later(
            min(30.0, self.settings.session_ttl / 2), self._sweep_sessions
        )

    def _stop_services(self) -> None:
        if self._session_sweep is not None:
            self._session_sweep.cancel()
            self._session_sweep = None
        if self._heartbeats is not None:
            self._heartbeats.stop()
            self._heartbeats = None
        if self._lag is not None:
            self._lag.stop()
            self._lag = None

    def clock_now(self) -> float:
        """Seconds on the lag-adjusted clock that heartbeat deadlines use."""
        return self.clock_at(asyncio.get_running_loop().time())

    def clock_at(self, loop_time: float) -> float:
        """``loop_time`` (the loop's clock) on the lag-adjusted clock."""
        lag = self._lag
        return loop_time if lag is None else lag.clock.adjusted(loop_time)

    # -- admission ---------------------------------------------------------------------------

    @property
    def admitting(self) -> bool:
        """Whether new connections are admitted (see ``pause_admission``)."""
        return not self._admission_paused

    def pause_admission(self) -> None:
        """Refuse new connections with 503 and ``Retry-After`` until ``resume_admission``."""
        self._admission_paused = True

    def resume_admission(self) -> None:
        """Admit new connections again."""
        self._admission_paused = False

    def admit(
        self, connection: Connection, handshake: Handshake, plan: Plan | None = None
    ) -> Refusal | None:
        """Check ``connection`` and register it, with no ``await`` in between.

        It counts under the client id it will actually have (a resumed session's). A socket
        that ``plan`` resumes in place of a half-open one does not count that one: it is
        closed 4409 as this one is admitted.
        """
        total = len(self.registry)
        per_ip = self.registry.count_ip(connection.remote_ip)
        per_client = self.registry.count_client(connection.client_id)
        replaced = plan.session.connection if plan is not None and plan.session else None
        if replaced is not None and replaced.connection_id in self.registry:
            total -= 1
            per_ip -= replaced.remote_ip == connection.remote_ip
            per_client -= replaced.client_id == connection.client_id
        refusal = self.admission.check(
            handshake,
            total=total,
            per_ip=per_ip,
            per_client=per_client,
            draining=not self.admitting,
        )
        if refusal is not None:
            self.events.rejected(
                refusal,
                remote_ip=connection.remote_ip,
                client_id=handshake.client_id,
                origin=handshake.origin,
                path=connection.path,
            )
            return refusal
        self.registry.add(connection)
        return None

    async def identify(self, connection: Connection, client_id: str) -> None:
        """File ``connection`` under the client id the app established (see
        ``ConnectionHandle.identify``)."""
        client_id = check_client_id(client_id)
        previous = connection.client_id
        if client_id == previous:
            return
        limit = self.settings.max_connections_per_client
        if limit is not None and self.registry.count_client(client_id) >= limit:
            refusal = self.admission.client_limit()
            self.events.identify_refused(
                connection.log, refusal, client_id=client_id, previous=previous, limit=limit
            )
            await connection.refuse(refusal)
        connection.client_id = client_id
        self.registry.rekey(connection, previous)
        if connection.session is not None:
            connection.session.client_id = client_id
        connection.log.debug("client_identified", client_id=client_id, previous=previous)

    # -- connection events ------------------------------------------------------------------

    def _opened(self, connection: Connection) -> None:
        self.events.opened(
            connection.log,
            client_id=connection.client_id,
            remote_ip=connection.remote_ip,
            path=connection.path,
        )

    def _watch(self, connection: Connection, deadline: float) -> None:
        self.ensure_started()
        if self._heartbeats is not None:
            self._heartbeats.add(connection.connection_id, deadline)

    def _unattended(self, connection: Connection) -> None:
        """``connection``'s app got a message and may not come back to receive() soon."""
        self._unread.add(connection)
        if self._reader_timer is None:
            self._arm_reader_check()

    def _arm_reader_check(self) -> None:
        self._reader_timer = asyncio.get_running_loop().call_later(
            READER_CHECK_DELAY, self._check_readers
        )

    def _check_readers(self) -> None:
        self._reader_timer = None
        pending = list(self._unread)
        self._unread.clear()
        for connection in pending:
            connection._check_reader()

    # -- resumption -------------------------------------------------------------------------

    def plan_resume(self, handshake: Handshake) -> Plan | None:
        """What the handshake's resume request would do (nothing is changed yet).

        ``None`` when the socket does not ask to resume (not opted in, or no usable token and
        seq: admission refuses a malformed seq).
        """
        if not handshake.resuming:
            return None
        return self.resumption.plan(handshake.token, handshake.seq or 0, time.time())

    def _bind_session(self, connection: Connection, plan: Plan | None, received: int) -> None:
        """Give an opted-in socket its session: the one ``plan`` resumes, or a fresh one."""
        now = time.time()
        if self.resumption.random_key and not self._warned_random_key:
            self._warned_random_key = True
            self.log.warning(
                "resume_key_random",
                hint="set WS_STABILIZER_SECRET_KEY: tokens made with a random per-process key "
                "do not survive a restart and do not work across workers",
            )
        binding = self.resumption.bind(
            plan or Plan(), connection.session_id, connection.client_id, received, now
        )
        session = binding.session
        connection.session = session
        connection.session_id = session.session_id
        connection._binding = binding
        if binding.resumed:
            old = binding.replaced
            if old is not None and old is not connection:
                # The old socket (half-open: its client is here again) stops serving the
                # session now: what it had is the session's, and it gets nothing more.
                session.user_data = dict(old.user_data)
                session.groups = set(old.groups)
                if old.shed(
                    CloseCode.REPLACED, "replaced by a newer connection of the same session"
                ):
                    old.gate.queue_close()
            # The socket was made with the session's client id (plan_resume, before admission).
            connection.user_data._restore(session.user_data)
            for group in session.groups:
                self.registry.join(connection, group)
        elif binding.reason is not None:
            connection.log.info(
                "resume_refused", reason=binding.reason, session_id=session.session_id
            )
        # From here until accept, hub sends to the session wait in its buffer (the socket is
        # not open yet); the replay is cut at accept.
        self.resumption.store.attach(session, connection)

    def _session_opened(
        self, connection: Connection, binding: Binding
    ) -> tuple[Message, list[Message]]:
        """The session frame for an opted-in socket just accepted, and the replay (cut now)."""
        replay, missed = binding.replay_at_accept()
        session = binding.session
        connection.resumed = binding.resumed
        connection.replayed = len(replay)
        connection.missed = missed
        connection.resume_reason = binding.reason
        if binding.resumed:
            connection.log.info(
                "session_resumed",
                session_id=session.session_id,
                client_id=session.client_id,
                replayed=len(replay),
                missed=missed,
                replaced=binding.replaced is not None,
            )
        frame = control_frame(
            "session",
            session_id=session.session_id,
            token=self.resumption.token(session, time.time()),
            resumed=binding.resumed,
            replayed=len(replay),
            missed=missed,
        )
        return frame, replay

    def _session_left(self, session: Any) -> None:
        self.resumption.store.detach(session, time.time())

    def resume_token(self, connection: Connection) -> str:
        """A fresh resume token for an opted-in connection's session."""
        if connection.session is None:
            raise StateError("this socket did not opt in to resumption (_stabilizer=1)")
        return self.resumption.token(connection.session, time.time())

    async def _connected(self, connection: Connection) -> None:
        hook = self.on_connect
        if hook is None:
            return
        try:
            result = hook(connection.handle)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            connection.log.error("hook_error", hook="on_connect", exc_info=exc)

    def _finished(self, connection: Connection, *, accepted: bool) -> None:
        self.registry.remove(connection)
        self._unread.discard(connection)
        if self._emptied is not None and not len(self.registry):
            self._emptied.set()
        if self._heartbeats is not None:
            self._heartbeats.remove(connection.connection_id)
        if not accepted:
            return
        code = connection.close_code if connection.close_code is not None else 1006
        self.events.closed(
            connection.log,
            code=code,
            closed_by=connection.closed_by,
            traffic=connection.traffic,
            client_id=connection.client_id,
            reason=connection.close_reason,
            duration_s=round(time.monotonic() - (connection.accepted_at or 0.0), 3),
            dropped=connection.dropped,
        )
        hook = self.on_disconnect
        if hook is not None:
            try:
                result = hook(
                    connection.handle, code, connection.close_reason, connection.closed_by or ""
                )
                if inspect.isawaitable(result):
                    self._spawn(_guarded(result, connection.log), "hook")
            except Exception as exc:
                connection.log.error("hook_error", hook="on_disconnect", exc_info=exc)

    def _spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"asgi_ws_stabilizer:{what}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- messaging --------------------------------------------------------------------------

    async def broadcast(
        self, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult:
        """Queue ``message`` for every open socket but the excluded ones, never awaiting one.

        ``exclude`` takes connection ids, client ids or handles. Returns what happened.
        """
        store = self.resumption.store
        result = await self._fan_out(self.registry.snapshot(), message, exclude, store.detached())
        self.events.sent("broadcast")
        return result

    async def publish(
        self, group: str, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult:
        """Queue ``message`` for every socket in ``group`` but the excluded ones."""
        members = self.registry.members(check_group(group))
        away = self.resumption.store.detached_in_group(group)
        result = await self._fan_out(members, message, exclude, away)
        self.events.sent("publish")
        return result

    async def send_to(self, client_id: str, message: OutboundMessage) -> int:
        """Queue ``message`` for every socket of ``client_id``; returns how many took it."""
        away = self.resumption.store.detached_of_client(client_id)
        result = await self._fan_out(self.registry.of_client(client_id), message, None, away)
        self.events.sent("send_to")
        return result.queued

    async def _fan_out(
        self,
        targets: list[Connection],
        message: OutboundMessage,
        exclude: Exclude,
        away: list[Session] | None = None,
    ) -> BroadcastResult:
        frame = encode(message)
        excluded = exclusion(exclude)
        async with self._broadcast_slots:
            # Sessions whose client is away (or whose new socket is not accepted yet) keep the
            # message for when it resumes.
            return await fan_out(
                targets, frame, excluded, self.settings.num_shards, away=away or ()
            )

    async def close(self, client_id: str, code: int = 1000, reason: str = "") -> int:
        """Close every socket of ``client_id``; returns how many were closed."""
        sockets = [c for c in self.registry.of_client(client_id) if c.shed(code, reason, by="app")]
        await self._send_closes(sockets)
        return len(sockets)

    async def _send_closes(self, connections: list[Connection]) -> None:
        """Write the close frames of shed connections, ``max_concurrent_cleanup`` at a time."""

        async def one(connection: Connection) -> None:
            async with self._cleanup_slots:
                if connection.gate.queue_close():
                    await connection.gate.flush(CLOSE_TIMEOUT)

        await asyncio.gather(*(one(c) for c in connections), return_exceptions=True)

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

    # -- slow consumers, rate limits, memory ------------------------------------------------

    def _slow_consumer(self, connection: Connection, action: str, frames: int) -> None:
        self.events.slow_consumer(
            connection.log,
            action=action,
            frames=frames,
            dropped_before=connection.dropped,
            client_id=connection.client_id,
            queued_bytes=connection.gate.queued_bytes,
            limit=self.settings.max_send_queue,
        )

    def _rate_limited(self, connection: Connection) -> None:
        self.events.rate_limited(
            connection.log,
            client_id=connection.client_id,
            rate_limit=self.settings.rate_limit,
            burst=self.settings.burst,
        )

    def _grew(self) -> None:
        limit = self.settings.max_total_memory
        if limit is not None and self.meter.total > limit and not self._evicting:
            self._enforce_memory(limit)

    def _enforce_memory(self, limit: int) -> None:
        from .connection import State

        policy = self.settings.memory_eviction_policy
        self._evicting = True
        try:
            candidates = [c for c in self.registry if c.state is State.OPEN]
            over = self.meter.total - limit
            victims: list[Connection] = []
            while over > 0 and candidates:
                if policy == "largest":
                    victim = max(candidates, key=lambda c: c.memory_used)
                elif policy == "fifo":
                    victim = min(candidates, key=lambda c: c.accepted_at or 0.0)
                else:
                    victim = min(candidates, key=lambda c: c.last_active)
                candidates.remove(victim)
                # Shedding frees its user data and outbox now, and its inbox as its handler
                # reads to the disconnect: count all of it, or bystanders would be shed for
                # bytes that no further eviction can free.
                used = victim.memory_used
                if victim.shed(1013, "memory limit: connection shed"):
                    over -= used
                    victims.append(victim)
                    self.events.evicted(
                        victim.log,
                        client_id=victim.client_id,
                        policy=policy,
                        bytes=used,
                        total=self.meter.total,
                        limit=limit,
                    )
            if victims:
                self._spawn(self._send_closes(victims), "cleanup")
        finally:
            self._evicting = False

    def memory_usage(self, top: int = 10) -> dict[str, Any]:
        """Bytes held by kind (user data measured afresh) and the ``top`` largest connections."""
        for connection in self.registry:
            if connection._accounted:
                connection.user_data.remeasure()
        largest = sorted(self.registry, key=lambda c: c.memory_used, reverse=True)[:top]
        usage = {
            "total": self.meter.total,
            "user_data": self.meter.user_data,
            "outbox": self.meter.outbox,
            "inbox": self.meter.inbox,
            "resume_buffers": self.resumption.store.buffered_bytes(),
            "connections": len(self.registry),
            "max_total_memory": self.settings.max_total_memory,
            "max_memory_per_connection": self.settings.max_memory_per_connection,
            "largest": [
                {
                    "connection_id": c.connection_id,
                    "client_id": c.client_id,
                    "bytes": c.memory_used,
                    "user_data": c.user_data.bytes,
                    "outbox": c.gate.queued_bytes,
                    "inbox": c.inbox.bytes,
                    "largest_keys": c.user_data.largest_keys(),
                }
                for c in largest
            ],
        }
        self._grew()
        return usage

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


def check_group(group: str) -> str:
    """``group`` if it is a usable group name.

    Raises:
        InvalidGroupError: not a string, empty, or longer than 256 characters.
    """
    if not isinstance(group, str) or not group or len(group) > MAX_GROUP_NAME:
        raise InvalidGroupError(
            f"group names are strings of 1 to {MAX_GROUP_NAME} characters, got {group!r:.80}"
        )
    return group


async def _guarded(awaitable: Awaitable[Any], log: EventLog) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.error("hook_error", hook="on_disconnect", exc_info=exc)
