"""The hub's services: what every connection of the process shares.

``Services`` implements the ``HubPort`` (aio/port.py) that each connection holds: the registry,
the heartbeat scheduler and the loop-lag clock, the reader watch, the session binding and the
memory guard, and the events. Its timers start with the app's lifespan, or lazily on the first
connection when the server sends no lifespan, and are bound to the running event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from starlette.types import Message

from ..aio.connection import Connection
from ..aio.heartbeat_scheduler import HeartbeatScheduler
from ..aio.lagmonitor import LoopLagMonitor
from ..aio.port import HeartbeatTexts
from ..aio.readers import ReaderWatch
from ..aio.watchdog import StallWatchdog
from ..codes import CLOSE_TIMEOUT
from ..config.settings import StabilizerSettings
from ..core import lagclock
from ..core.inbound import InboundRules
from ..core.memory import Meter
from ..core.messages import payload_size
from ..core.registry import Registry
from ..observe.events import SAMPLE_EVERY, Events
from ..observe.log import EventLog
from .memory import MemoryGuard
from .sessions import SessionBinder

NO_FRAMES: tuple[Message, ...] = ()
"""What goes out first on accept for a socket without a session: nothing."""


class Hooks(Protocol):
    """The app's connection hooks (the hub runs them with the public handle)."""

    async def connected(self, connection: Connection) -> None:
        """``on_connect``, right after accept."""
        ...

    def ended(self, connection: Connection, code: int | None) -> None:
        """The socket ended: ``on_disconnect`` if it was accepted (``code`` is then its close
        code, else ``None``)."""
        ...

    def sample(self) -> None:
        """Hand ``stats()`` to the sinks that copy from it (metrics on)."""
        ...


class Services:
    """The process-wide side of every connection (the ``HubPort`` they hold)."""

    def __init__(
        self,
        settings: StabilizerSettings,
        log: EventLog,
        events: Events,
        binder: SessionBinder,
        registry: Registry[Connection],
        meter: Meter,
        hooks: Hooks,
    ) -> None:
        self.settings = settings
        self.log = log
        self.events = events
        self.binder = binder
        self.registry = registry
        self.meter = meter
        self._hooks = hooks
        self.texts = HeartbeatTexts(
            ping={"type": "websocket.send", "text": settings.ping_message},
            pong={"type": "websocket.send", "text": settings.pong_message},
            pong_size=payload_size({"text": settings.pong_message}),
        )
        self.rules = InboundRules(
            ping=settings.ping_message,
            pong=settings.pong_message,
            heartbeat_on=settings.heartbeat_enabled,
            max_size=settings.max_message_size,
        )
        self.readers = ReaderWatch()
        self._beat_opted_in = settings.heartbeat_enabled
        self._beat_all = settings.heartbeat_enabled and settings.heartbeat_clients == "all"
        self.guard = MemoryGuard(settings, registry, meter, events, self.close_later)
        self.grew: Callable[[], None] = self.guard.grew
        """Memory held grew: enforce ``max_total_memory`` (the guard's own method: it runs
        on every hub frame queued)."""
        self.emptied: asyncio.Event | None = None
        """Set when the last socket goes (a drain waits on it)."""
        self._background: set[asyncio.Task[Any]] = set()
        self._cleanup_slots = asyncio.Semaphore(settings.max_concurrent_cleanup)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lag: LoopLagMonitor | None = None
        self._heartbeats: HeartbeatScheduler | None = None
        self._session_sweep: asyncio.TimerHandle | None = None
        self._sampling: asyncio.TimerHandle | None = None

    # -- timers -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the timers run on the current loop."""
        return self._lag is not None and self._lag.running

    def ensure_started(self) -> bool:
        """Start the timers on the running loop (idempotent; restarts on a new loop).

        Returns whether they moved to another loop (then loop-bound primitives are made anew).
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop and self.running:
            return False
        self.stop()
        moved = self._loop is not None and self._loop is not loop
        if moved:
            # asyncio primitives bind to the first loop that waits on them.
            self._cleanup_slots = asyncio.Semaphore(self.settings.max_concurrent_cleanup)
        self._loop = loop
        threshold = self.settings.loop_stall_threshold
        watchdog = StallWatchdog(
            loop,
            threshold=threshold,
            interval=lagclock.PROBE_INTERVAL,
            still_after=max(5.0, 10 * threshold),
            still_blocked=self.events.loop_still_blocked,
        )
        self._lag = LoopLagMonitor(
            loop,
            self.events.loop_stalled,
            clock=lagclock.LagClock(probe_interval=lagclock.PROBE_INTERVAL),
            watchdog=watchdog,
        )
        self._lag.start()
        self._heartbeats = HeartbeatScheduler(loop, self._lag, self.registry.get, self.log)
        self._sweep_sessions()
        if self.events.sampling:
            self._sample()
        for connection in self.registry:
            if connection.accepted_at is not None and connection.beating:
                self._heartbeats.add(
                    connection.connection_id, self.clock_now() + connection.heartbeat.interval
                )
        return moved

    def stop(self) -> None:
        """Stop the timers. Open sockets stay open, without heartbeat."""
        if self._sampling is not None:
            self._sampling.cancel()
            self._sampling = None
        if self._session_sweep is not None:
            self._session_sweep.cancel()
            self._session_sweep = None
        if self._heartbeats is not None:
            self._heartbeats.stop()
            self._heartbeats = None
        if self._lag is not None:
            self._lag.stop()
            self._lag = None

    def _sweep_sessions(self) -> None:
        self.binder.sweep()
        self._session_sweep = asyncio.get_running_loop().call_later(
            self.binder.sweep_every, self._sweep_sessions
        )

    def _sample(self) -> None:
        # The next one first: a copy that raises (logged by the loop) does not end them.
        self._sampling = asyncio.get_running_loop().call_later(SAMPLE_EVERY, self._sample)
        self._hooks.sample()

    def clock_now(self) -> float:
        """Seconds on the lag-adjusted clock that heartbeat deadlines use."""
        return self.clock_at(asyncio.get_running_loop().time())

    def clock_at(self, loop_time: float) -> float:
        """``loop_time`` (the loop's clock) on the lag-adjusted clock."""
        lag = self._lag
        return loop_time if lag is None else lag.clock.adjusted(loop_time)

    @property
    def watched(self) -> int:
        """Connections the heartbeat scheduler watches now."""
        return 0 if self._heartbeats is None else len(self._heartbeats)

    def watch(self, connection: Connection, deadline: float) -> None:
        """Look at ``connection``'s heartbeat at ``deadline``."""
        self.ensure_started()
        if self._heartbeats is not None:
            self._heartbeats.add(connection.connection_id, deadline)

    # -- a connection's life ----------------------------------------------------------------

    def opened(self, connection: Connection) -> Sequence[Message]:
        """Report the accept; the session frame and replay of an opted-in socket."""
        self.events.opened(
            self.log,  # with connection_id as a field: no log bound per socket for one event
            connection_id=connection.connection_id,
            client_id=connection.client_id,
            remote_ip=connection.remote_ip,
            path=connection.path,
        )
        frames = NO_FRAMES if connection.binding is None else self.binder.opened(connection)
        # heartbeat_clients="opted_in": only clients that opted in (or ping us themselves, see
        # aio/reader.py) get the text heartbeat; a plain client may not know the text "ping"
        # (one that parses every message as JSON would throw), and the server's protocol
        # keepalive judges it instead.
        if self._beat_all or (self._beat_opted_in and connection.session is not None):
            connection.start_beating()
        # Someone must read the socket soon if the app does not go to receive().
        self.readers.add(connection)
        return frames

    async def send_shared(self, connection: Connection, message: Message, size: int) -> None:
        """The app's own send on a socket whose session the broker keeps."""
        await self.binder.send(connection, message, size)

    async def connected(self, connection: Connection) -> None:
        """Run ``on_connect``."""
        await self._hooks.connected(connection)

    def finished(self, connection: Connection) -> None:
        """Unregister ``connection``, keep its session, report the close, run ``on_disconnect``."""
        if connection.session is not None:
            self.binder.left(connection)
        self.registry.remove(connection)
        self.readers.discard(connection)
        if self.emptied is not None and not len(self.registry):
            self.emptied.set()
        if connection.beating and self._heartbeats is not None:
            self._heartbeats.remove(connection.connection_id)
        if connection.accepted_at is None:
            self._hooks.ended(connection, None)
            return
        code = connection.close_code if connection.close_code is not None else 1006
        self.events.closed(
            self.log,
            connection_id=connection.connection_id,
            code=code,
            closed_by=connection.closed_by,
            traffic=connection.traffic,
            client_id=connection.client_id,
            reason=connection.close_reason,
            duration_s=round(time.monotonic() - connection.accepted_at, 3),
            dropped=connection.dropped,
        )
        self._hooks.ended(connection, code)

    # -- closes and background work -----------------------------------------------------------

    async def send_closes(self, connections: list[Connection]) -> None:
        """Write the close frames of shed connections, ``max_concurrent_cleanup`` at a time."""

        async def one(connection: Connection) -> None:
            async with self._cleanup_slots:
                if connection.gate.queue_close():
                    await connection.gate.flush(CLOSE_TIMEOUT)

        await asyncio.gather(*(one(c) for c in connections), return_exceptions=True)

    def close_later(self, connections: list[Connection]) -> None:
        """``send_closes`` in the background."""
        self.spawn(self.send_closes(connections), "cleanup")

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``coro`` as a task the hub keeps until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=f"asgi_ws_stabilizer:{what}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
