"""The memory guard: ``max_total_memory`` over every connection of the process.

Each connection accounts its user data, outbox and inbox in the hub's ``Meter``; when the total
passes the limit, sockets are shed (closed 1013) in the order ``memory_eviction_policy`` gives
(core/eviction.py) until it fits again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..aio.connection import Connection
from ..config.settings import StabilizerSettings
from ..core.eviction import eviction_order
from ..core.memory import Meter
from ..core.registry import Registry
from ..core.state import State
from ..observe.events import Events
from ..resume.sessions import SessionStore


class MemoryGuard:
    """Sheds sockets when the process holds more than ``max_total_memory``."""

    def __init__(
        self,
        settings: StabilizerSettings,
        registry: Registry[Connection],
        meter: Meter,
        events: Events,
        close: Callable[[list[Connection]], None],
    ) -> None:
        self._settings = settings
        self._registry = registry
        self.meter = meter
        self._events = events
        self._close = close
        """Sends the close frames of shed sockets (in the background)."""
        self._evicting = False

    def grew(self) -> None:
        """Memory held grew: shed sockets if the total is over the limit."""
        limit = self._settings.max_total_memory
        if limit is not None and self.meter.total > limit and not self._evicting:
            self._evict(limit)

    def _evict(self, limit: int) -> None:
        policy = self._settings.memory_eviction_policy
        self._evicting = True
        try:
            over = self.meter.total - limit
            victims: list[Connection] = []
            open_ = (c for c in self._registry if c.state is State.OPEN)
            for victim in eviction_order(open_, policy):
                if over <= 0:
                    break
                # Shedding frees its user data and outbox now, and its inbox as its handler
                # reads to the disconnect: count all of it, or bystanders would be shed for
                # bytes that no further eviction can free.
                used = victim.memory_used
                if victim.shed(1013, "memory limit: connection shed"):
                    over -= used
                    victims.append(victim)
                    self._events.evicted(
                        victim.log,
                        client_id=victim.client_id,
                        policy=policy,
                        bytes=used,
                        total=self.meter.total,
                        limit=limit,
                    )
            if victims:
                self._close(victims)
        finally:
            self._evicting = False

    def usage(self, sessions: SessionStore, top: int = 10) -> dict[str, Any]:
        """Bytes held by kind (user data measured afresh) and the ``top`` largest connections."""
        for connection in self._registry:
            if connection.user_data.accounted:
                connection.user_data.remeasure()
        largest = sorted(self._registry, key=lambda c: c.memory_used, reverse=True)[:top]
        settings = self._settings
        usage = {
            "total": self.meter.total,
            "user_data": self.meter.user_data,
            "outbox": self.meter.outbox,
            "inbox": self.meter.inbox,
            "resume_buffers": sessions.buffered_bytes(),
            "connections": len(self._registry),
            "max_total_memory": settings.max_total_memory,
            "max_memory_per_connection": settings.max_memory_per_connection,
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
        self.grew()
        return usage
