"""The Redis backend: one hub over every process that shares a Redis (redis-py's redis.asyncio).

Every hub send becomes one entry of a Redis stream (the bus), numbered by a Lua script
(redis_scripts.py); every process reads the bus from its cursor and delivers each entry to its own
sockets, its own publishes included, so a message reaches each socket once, by one path, in the
order the bus gives it (and a publisher's sends reach the bus in the order it made them: one
writer task per process sends them in turn).

When Redis is unreachable, sends wait in a buffer of at most ``backend_buffer_size`` payload bytes
and go out, in order, on recovery; past the bound the oldest are dropped, counted and logged. The
writer reconnects with full-jitter backoff, re-registers this process's presence and the reader
picks up from its cursor. A read never blocks longer than the socket timeout, so a half-dead
link is noticed. A Redis that lost its data (a new epoch: see redis_scripts.REFRESH) is read
from its start; one that kept it (persistence, a replica promoted) from the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from ..config.settings import StabilizerSettings
from ..config.urls import mask_url
from ..core.delivery import BroadcastResult, DeferredResult, Target
from ..core.messages import Frame
from ..observe.events import Events
from ..resume.sessions import SessionStore
from . import redis_scripts as lua
from .base import Backend, LocalDelivery, Roster
from .redis_bus import BUS_LENGTH, bus_entries, close_args, last_pseq, send_args, text
from .redis_presence import ChangeFeed, RedisPresence
from .redis_reader import BusReader
from .redis_sessions import RedisSessions
from .sendqueue import SendQueue, within

PUBLISH_WAIT = 1.0
"""Seconds a hub send waits for Redis before it reports the message deferred (held)."""
SOCKET_TIMEOUT = 3.0
"""No Redis read waits longer than this: a half-dead link is noticed within it."""
BLOCK_MS = 1000
"""How long one bus read waits for new entries (well within the socket timeout)."""
BACKOFF = (0.1, 5.0)
"""Reconnect delays, full jitter, doubling from the first to the cap."""
BATCH = 64
"""Sends written to Redis in one round trip."""


class RedisBackend(Backend):
    """The hub's sends and presence through one Redis."""

    def __init__(self, settings: StabilizerSettings, events: Events) -> None:
        self.sessions = SessionStore(settings.session_ttl, settings.resume_buffer_size)
        self._url = settings.backend_url
        self._events = events
        self.prefix = settings.backend_prefix + ":"
        self.node = secrets.token_hex(8)
        """This process's id in Redis."""
        self.ttl_ms = int(settings.presence_ttl * 1000)
        self._queue = SendQueue(settings.backend_buffer_size)
        self._client: aioredis.Redis | None = None
        self._new_events()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._roster: Roster | None = None
        self._epoch: str | None = None
        self.state = "connecting"
        self.reconnects = 0
        self.dropped = 0
        self.published = 0
        self.presence = RedisPresence(self)
        self.buffer_limit = settings.resume_buffer_size
        self.shared_sessions: RedisSessions = RedisSessions(self, settings, events.log)
        self.bus = BusReader(events, self.node, self.shared_sessions)
        """What has been read from the bus, and where each entry goes."""

    def __repr__(self) -> str:
        return f"<RedisBackend {mask_url(self._url)} {self.state}>"

    @property
    def client(self) -> aioredis.Redis | None:
        """The Redis client while connected."""
        return self._client if self._connected.is_set() else None

    def bind(self, local: LocalDelivery, roster: Roster) -> None:
        self.bus.local = local
        self._roster = roster
        roster.changes = ChangeFeed(self._presence_changed)

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping = False
        self._new_events()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write(), name="asgi_ws_stabilizer:redis-writer"),
            loop.create_task(self._read(), name="asgi_ws_stabilizer:redis-reader"),
        ]

    def _new_events(self) -> None:
        # asyncio primitives bind to the loop that first waits on them: a new start, new ones.
        # _reading: set once a (re)connect has written this process's presence and sessions
        # (the reader waits: an entry read before would miss a session's caught-up messages);
        # _drained: set when the writer has emptied the queue (aclose waits for it).
        self._wakeup, self._connected, self._reading, self._drained = (
            asyncio.Event() for _ in range(4)
        )

    async def aclose(self) -> None:
        # Let the writer send what is queued (briefly), then stop and leave presence at once.
        await self.written()
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        client = self.client
        if client is not None:
            with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    client.eval(lua.LEAVE, 0, self.prefix, self.node), PUBLISH_WAIT
                )
        self._connected.clear()
        self._reading.clear()
        if self._client is not None:
            await _close_quietly(self._client)
            self._client = None

    # -- sends ---------------------------------------------------------------------------------

    async def publish(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        count = await self.send(send_args(target, frame, excluded), frame.size)
        if count is None:
            return DeferredResult()
        return BroadcastResult(targeted=count, queued=count)

    async def close(self, client_id: str, code: int, reason: str) -> int:
        count = await self.send(close_args(client_id, code, reason), 0)
        return count or 0

    async def send(self, args: list[str | bytes], size: int) -> int | None:
        """Queue one hub send; the cluster count of its targets, or ``None`` while held."""
        connected = self._connected.is_set()
        done: asyncio.Future[int] | None = (
            asyncio.get_running_loop().create_future() if connected else None
        )
        dropped = self._queue.send(args, size, done)
        self.published += 1
        if dropped:
            self.dropped += dropped
            self._events.backend_dropped(
                count=dropped, dropped_total=self.dropped, limit=self._queue.limit, state=self.state
            )
        self._wakeup.set()
        if done is None:
            return None
        return await within(done, PUBLISH_WAIT)

    async def written(self) -> None:
        """Wait (up to ``PUBLISH_WAIT``) until the queue is written."""
        if len(self._queue) and self._connected.is_set():
            self._drained.clear()
            self._wakeup.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), PUBLISH_WAIT)

    # -- presence and session changes (the registry's Changes) --------------------------------

    def change(self, *op: str) -> None:
        """Queue presence or session changes (4 fields each), in order with the sends."""
        # While disconnected the change is not kept: the reconnect writes the whole roster and
        # every session this process serves.
        if self._connected.is_set():
            self._queue.change(*op)
            self._wakeup.set()

    def _presence_changed(self, op: str, connection_id: str, client_id: str, extra: str) -> None:
        self.change(op, connection_id, client_id, extra)
        self.shared_sessions.presence_changed(op, connection_id, client_id, extra)

    # -- the writer: connects, sends in order, keeps presence alive -----------------------------

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        every = self.ttl_ms / 3000
        refresh_at = sessions_at = 0.0
        while not self._stopping:
            client = self.client
            if client is None:
                await self._connect()
                refresh_at = loop.time() + every
                continue
            if not self._queue:
                # Until a send (or the next refresh); a timer, not wait_for's task per wait.
                self._wakeup.clear()
                alarm = loop.call_at(refresh_at, self._wakeup.set)
                try:
                    await self._wakeup.wait()
                finally:
                    alarm.cancel()
            try:
                if self._queue.uncertain:
                    await self._settle(client)
                if self._queue:
                    await self._flush(client)
                    self._drained.set()
                if loop.time() >= refresh_at:
                    # Keep this process in presence (also under a steady stream of sends).
                    refresh_at = loop.time() + every
                    keep = "0"
                    if loop.time() >= sessions_at:
                        # Served sessions live 2 x session_ttl + presence_ttl: refreshed every
                        # session_ttl / 2 (+ up to presence_ttl / 3, the ticks of this loop).
                        sessions_at = loop.time() + self.shared_sessions.keep_every
                        keep = str(self.shared_sessions.held_ms)
                    await client.eval(
                        lua.REFRESH, 0, self.prefix, self.node, self.ttl_ms, "0", keep
                    )
            except (RedisError, OSError) as exc:
                self._broken(exc)

    async def _settle(self, client: aioredis.Redis) -> None:
        """After a write lost its reply: find in the bus the last send of this process that ran
        (entries carry node and pseq), so that the retry does not run it twice."""
        last = await last_pseq(client, self.prefix + "bus", self.node, BUS_LENGTH)
        settled = self._queue.confirm(last)
        if settled:
            self._events.log.info("backend_settled", sends=settled, last_pseq=last)

    async def _flush(self, client: aioredis.Redis) -> None:
        """Write the queue's head, ``BATCH`` items in one round trip, in order."""
        while self._queue:
            batch = self._queue.take(BATCH)
            pipe = client.pipeline(transaction=False)
            for item in batch:
                if item.args is not None:
                    pipe.eval(
                        lua.PUBLISH, 0, self.prefix, self.node, item.pseq, BUS_LENGTH,
                        *item.args, self.buffer_limit,
                    )  # fmt: skip
                else:
                    pipe.eval(lua.PRESENCE, 0, *self._presence_args(), *item.ops)
            try:
                results = await pipe.execute(raise_on_error=False)
            except BaseException:
                self._queue.failed()
                raise
            counts = []
            for result in results:
                if isinstance(result, ResponseError):
                    # A script error is a bug, not a broken link: report it, do not retry it.
                    self._events.log.error("backend_script_error", error=str(result))
                    counts.append(0)
                else:
                    counts.append(int(result[1]) if isinstance(result, list) else 0)
            self._queue.written(counts)

    async def _connect(self) -> aioredis.Redis | None:
        """Connect (again), with backoff; write this process's presence; wake the reader."""
        delay = BACKOFF[0]
        while not self._stopping:
            if self._client is not None:
                await _close_quietly(self._client)
                self._client = None
            client = aioredis.from_url(
                self._url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # a retried write could run twice: pseq dedupes
                health_check_interval=0,
            )
            try:
                reply = await client.eval(
                    lua.REFRESH, 0, self.prefix, self.node, self.ttl_ms, "1", "0",
                    secrets.token_hex(8),
                )  # fmt: skip
                top, epoch = int(reply[0]), text(reply[1])
                if self.bus.cursor is None:
                    self.bus.cursor = top  # the first connect: from the bus's top
                elif epoch != self._epoch:
                    # Redis lost its data (restarted without it): its new bus from the start.
                    self.bus.cursor = 0
                else:
                    # The same data (a reconnect, or a restart that kept it): on from the
                    # cursor, or from the top if a failover lost the bus's tail.
                    self.bus.cursor = min(self.bus.cursor, top)
                self._epoch = epoch
                self._client = client
                # The roster written below says it all: changes queued before it are moot, and
                # from here on (no await in between) every change is queued after it.
                self._queue.drop_changes()
                self._connected.set()
                ops: list[str] = []
                for entry in self._roster.snapshot() if self._roster is not None else ():
                    ops += ["add", entry.connection_id, entry.client_id, ""]
                    for group in entry.groups:
                        ops += ["join", entry.connection_id, entry.client_id, group]
                if ops:
                    await client.eval(lua.PRESENCE, 0, *self._presence_args(), *ops)
                self.bus.add_late(await self.shared_sessions.restore(client))
                self._reading.set()
            except (RedisError, OSError) as exc:
                self._connected.clear()
                self._reading.clear()
                self._client = None
                await _close_quietly(client)
                if self.state != "reconnecting":
                    self._set_state("reconnecting", error=type(exc).__name__)
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, BACKOFF[1])
                continue
            if self.state != "connecting":
                self.reconnects += 1
            self._set_state("connected")
            return client
        return None

    def _presence_args(self) -> tuple[str, str, int, int, int]:
        shared = self.shared_sessions
        return self.prefix, self.node, self.ttl_ms, shared.held_ms, shared.away_ms

    def _broken(self, exc: BaseException) -> None:
        if not self._connected.is_set():
            return
        self._connected.clear()
        self._reading.clear()
        self._set_state("reconnecting", error=type(exc).__name__)
        self._wakeup.set()

    def _set_state(self, state: str, **fields: Any) -> None:
        self.state = state
        self._events.backend_state(
            state, url=mask_url(self._url), node=self.node, buffered=self._queue.bytes, **fields
        )

    # -- the reader: the bus, from the cursor --------------------------------------------------

    async def _read(self) -> None:
        bus = self.prefix + "bus"
        while not self._stopping:
            await self._connected.wait()
            await self._reading.wait()
            client = self.client
            if client is None or self.bus.cursor is None:
                continue
            try:
                response: object = await client.xread(
                    {bus: f"{self.bus.cursor}-0"}, count=512, block=BLOCK_MS
                )
            except (RedisError, OSError) as exc:
                self._broken(exc)
                continue
            for entry_id, fields in bus_entries(response):
                await self.bus.take(entry_id, fields)

    def describe(self) -> dict[str, object]:
        return {
            "kind": "redis",
            "state": self.state,
            "url": mask_url(self._url),
            "node": self.node,
            "reconnects": self.reconnects,
            "buffered": self._queue.bytes,
            "dropped": self.dropped,
            "published": self.published,
            "received": self.bus.received,
            "gaps": self.bus.gaps,
            "sessions_served": self.shared_sessions.served(),
        }


async def _close_quietly(client: aioredis.Redis) -> None:
    """Close ``client``; a link already broken has nothing more to say."""
    with contextlib.suppress(RedisError, OSError):
        await client.aclose()
