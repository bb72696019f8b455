"""The backend interface, shaped like httpx's transports: a few methods and a close.

A hub send (``broadcast``, ``publish``, ``send_to``, ``close``) never touches a socket itself: it
hands the encoded frame and its ``Target`` to the backend, which carries it to every process that
shares the backend; each process then delivers it to its own sockets and to the sessions of its
away clients through its ``LocalDelivery`` (the hub's messaging service), one path for both. The
in-memory backend has one process: it hands the send straight to the local delivery.

The backend also keeps the resumable sessions (``sessions``), so that a backend shared by many
processes can let a client resume on any of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

from ..core.delivery import BroadcastResult, Target
from ..core.messages import Frame
from ..resume.sessions import SessionStore


class LocalDelivery(Protocol):
    """What one process does with a send that reached it (implemented by the hub)."""

    async def deliver(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        """Queue ``frame`` for this process's matching sockets and away sessions."""
        ...

    async def close(self, client_id: str, code: int, reason: str) -> int:
        """Close this process's sockets of ``client_id``; how many were closed."""
        ...


class Backend(ABC):
    """Carries hub sends to every process, and keeps the sessions."""

    sessions: SessionStore
    """Resumable sessions (their replay buffers, client ids, groups and user data)."""

    @abstractmethod
    def bind(self, local: LocalDelivery) -> None:
        """Deliver the sends that reach this process through ``local`` (called once)."""

    async def start(self) -> None:  # noqa: B027 - a backend with nothing to start keeps this
        """Connect (lifespan startup)."""

    @abstractmethod
    async def publish(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        """Send ``frame`` to ``target`` on every process but to the ``excluded`` connection
        and client ids; what the sockets did with it."""

    @abstractmethod
    async def close(self, client_id: str, code: int, reason: str) -> int:
        """Close every socket of ``client_id`` on every process; how many were closed."""

    async def aclose(self) -> None:  # noqa: B027 - a backend with nothing to close keeps this
        """Disconnect (lifespan shutdown)."""
