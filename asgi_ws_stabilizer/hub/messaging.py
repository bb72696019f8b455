"""Messaging: this process's delivery of hub sends, to its sockets and its away sessions.

The hub hands every send to the backend (backends/base.py); the backend hands it to each process's
``Messaging.deliver`` (its ``LocalDelivery``). One path serves sockets and sessions alike:

* each socket gets the frame through its own outbox (``Connection.deliver``), so a slow consumer
  never delays anyone else;
* a resumable socket is reached through its session, looked up at the moment of delivery: the
  session's socket gets the frame if it is open, else the session keeps it for its replay; a
  session takes the frame once, however many of its sockets match (an old half-open one and its
  replacement), and sessions whose client is away are reached the same way after the sockets.
  A session kept in a broker is not reached here: the broker logs and numbers its messages, and
  the bus lists it (hub/shared_sessions.py).

The targets are cut into ``num_shards`` slices and the fan-out yields to the event loop between
slices, so a broadcast to many thousands of sockets never blocks the loop for its whole length;
``max_concurrent_broadcast`` fan-outs run at once, the rest wait their turn in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from ..aio.connection import Connection
from ..aio.outbox import deliver
from ..config.settings import StabilizerSettings
from ..core.delivery import QUEUED, BroadcastResult, Target
from ..core.messages import Frame
from ..core.registry import Registry
from ..core.state import OPEN
from ..resume.sessions import Session, SessionStore
from .services import Services

SEND_KINDS = {"all": "broadcast", "group": "publish", "client": "send_to"}
"""The hub send that makes each kind of target (the metrics' ``kind`` label)."""


class Messaging:
    """Delivers the hub sends that reach this process (implements ``LocalDelivery``)."""

    def __init__(
        self,
        settings: StabilizerSettings,
        registry: Registry[Connection],
        sessions: SessionStore,
        services: Services,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._sessions = sessions
        self._services = services
        self._slots = asyncio.Semaphore(settings.max_concurrent_broadcast)

    def new_loop(self) -> None:
        """The hub moved to a new event loop: asyncio primitives bind to the first one."""
        self._slots = asyncio.Semaphore(self._settings.max_concurrent_broadcast)

    async def deliver(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        """Queue ``frame`` for this process's sockets and away sessions that ``target`` names."""
        registry, sessions = self._registry, self._sessions
        if target.kind == "all":
            sockets, away = registry.snapshot(), sessions.detached()
        elif target.kind == "group":
            sockets, away = registry.members(target.name), sessions.detached_in_group(target.name)
        else:
            sockets = registry.of_client(target.name)
            away = sessions.detached_of_client(target.name)
        async with self._slots:
            events = self._services.events
            kind = SEND_KINDS.get(target.kind) if events.sampling else None
            if kind is None:
                return await self._fan_out(sockets, frame, excluded, away)
            began = time.perf_counter()
            result = await self._fan_out(sockets, frame, excluded, away)
            events.fanned_out(kind, time.perf_counter() - began)
            return result

    async def close(self, client_id: str, code: int, reason: str) -> int:
        """Close this process's sockets of ``client_id``; how many were closed."""
        sockets = [c for c in self._registry.of_client(client_id) if c.shed(code, reason, by="app")]
        await self._services.send_closes(sockets)
        return len(sockets)

    def kick(self, connection_id: str, code: int, reason: str) -> None:
        """Close this process's socket ``connection_id``, if it has it."""
        connection = self._registry.get(connection_id)
        if connection is not None:
            connection.abort(code, reason)

    async def _fan_out(
        self,
        targets: Sequence[Connection],
        frame: Frame,
        excluded: frozenset[str],
        away: Sequence[Session],
    ) -> BroadcastResult:
        result = BroadcastResult()
        limit = self._settings.max_send_queue
        reached: set[int] = set()  # ids of the sessions reached
        step = max(1, -(-len(targets) // self._settings.num_shards))
        queued = 0  # the common outcome, added up here rather than by result.count
        for start in range(0, len(targets), step):
            if start:
                await asyncio.sleep(0)
            for connection in targets[start : start + step]:
                session = connection.session
                if session is not None:
                    if session.shared:
                        continue  # the broker numbers its messages: they come listed
                    if id(session) not in reached:
                        reached.add(id(session))
                        # Excluding the socket it was found through keeps it out of the replay.
                        held_back = bool(excluded) and _excludes(excluded, connection)
                        self._to_session(
                            session, frame, excluded, result, limit, keep=not held_back
                        )
                    continue
                if connection.state is not OPEN:
                    continue
                if excluded and _excludes(excluded, connection):
                    continue
                outcome = deliver(connection, frame, limit)
                if outcome is QUEUED:
                    queued += 1
                else:
                    result.count(outcome)
        result.targeted += queued
        result.queued += queued
        for session in away:
            if id(session) in reached or (excluded and session.client_id in excluded):
                continue
            reached.add(id(session))
            self._to_session(session, frame, excluded, result, limit, keep=True)
        return result

    def _to_session(
        self,
        session: Session,
        frame: Frame,
        excluded: frozenset[str],
        result: BroadcastResult,
        limit: int | None,
        *,
        keep: bool,
    ) -> None:
        """Deliver to ``session``'s socket if it is open now (unless excluded), else keep the
        frame for its replay when ``keep``."""
        socket_id = session.connection_id
        current = self._registry.get(socket_id) if socket_id is not None else None
        if current is not None and current.state is OPEN:
            if excluded and _excludes(excluded, current):
                return
            result.count(deliver(current, frame, limit))
        elif keep:
            session.keep(frame.message, frame.size)


def _excludes(excluded: frozenset[str], connection: Connection) -> bool:
    return connection.connection_id in excluded or connection.client_id in excluded
