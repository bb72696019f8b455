"""The in-memory backend: one process, nothing to install. The default, and the test double."""

from __future__ import annotations

from ..core.delivery import BroadcastResult, Target
from ..core.messages import Frame
from ..errors import StateError
from ..resume.sessions import SessionStore
from .base import Backend, LocalDelivery, LocalPresence, Presence, Roster


class MemoryBackend(Backend):
    """Hands every send straight to this process's delivery; sessions live in this process."""

    def __init__(self, *, session_ttl: float, resume_buffer_size: int) -> None:
        self.sessions = SessionStore(session_ttl, resume_buffer_size)
        self.presence: Presence = LocalPresence()  # no roster until bound: StateError
        self._local: LocalDelivery | None = None
        self.published = 0

    def __repr__(self) -> str:
        return f"<MemoryBackend sessions={len(self.sessions)}>"

    def bind(self, local: LocalDelivery, roster: Roster) -> None:
        self._local = local
        self.presence = LocalPresence(roster)

    def _delivery(self) -> LocalDelivery:
        if self._local is None:
            raise StateError("the backend is not bound to a hub")
        return self._local

    async def publish(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        delivery = self._delivery()
        self.published += 1
        return await delivery.deliver(target, frame, excluded)

    async def close(self, client_id: str, code: int, reason: str) -> int:
        delivery = self._delivery()
        self.published += 1
        return await delivery.close(client_id, code, reason)

    def describe(self) -> dict[str, object]:
        return {
            "kind": "memory",
            "state": "connected",
            "url": "memory://",
            "reconnects": 0,
            "buffered": 0,
            "dropped": 0,
            "published": self.published,
        }
