"""The in-memory backend: one process, nothing to install. The default, and the test double."""

from __future__ import annotations

from ..core.delivery import BroadcastResult, Target
from ..core.messages import Frame
from ..errors import StateError
from ..resume.sessions import SessionStore
from .base import Backend, LocalDelivery


class MemoryBackend(Backend):
    """Hands every send straight to this process's delivery; sessions live in this process."""

    def __init__(self, *, session_ttl: float, resume_buffer_size: int) -> None:
        self.sessions = SessionStore(session_ttl, resume_buffer_size)
        self._local: LocalDelivery | None = None

    def __repr__(self) -> str:
        return f"<MemoryBackend sessions={len(self.sessions)}>"

    def bind(self, local: LocalDelivery) -> None:
        self._local = local

    def _delivery(self) -> LocalDelivery:
        if self._local is None:
            raise StateError("the backend is not bound to a hub")
        return self._local

    async def publish(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        return await self._delivery().deliver(target, frame, excluded)

    async def close(self, client_id: str, code: int, reason: str) -> int:
        return await self._delivery().close(client_id, code, reason)
