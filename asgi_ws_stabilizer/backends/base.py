"""The backend interface, shaped like httpx's transports: a few methods and a close.

A hub send (``broadcast``, ``publish``, ``send_to``, ``close``) never touches a socket itself: it
hands the encoded frame and its ``Target`` to the backend, which carries it to every process that
shares the backend; each process then delivers it to its own sockets and to the sessions of its
away clients through its ``LocalDelivery`` (the hub's messaging service), one path for both. The
in-memory backend has one process: it hands the send straight to the local delivery.

The backend also answers for presence (``presence``: who is connected, cluster-wide when the
backend spans processes) and keeps the resumable sessions: in the process (``sessions``) or, for
a backend that spans processes, in its broker (``shared_sessions``, see shared.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol

from ..core.delivery import BroadcastResult, Target
from ..core.messages import Frame
from ..core.registry import Changes, Entry
from ..errors import StateError
from ..resume.sessions import SessionStore
from .shared import SharedSessions


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

    def kick(self, connection_id: str, code: int, reason: str) -> None:
        """Close one socket of this process, if it has it (its session moved elsewhere)."""
        ...


class Roster(Protocol):
    """This process's sockets, as presence needs them (the hub's registry)."""

    changes: Changes | None
    """Told of every change (a backend that keeps presence elsewhere sets it)."""

    def __len__(self) -> int: ...
    def snapshot(self) -> Sequence[Entry]: ...
    def members(self, group: str) -> Sequence[Entry]: ...
    def client_ids(self) -> list[str]: ...
    def count_client(self, client_id: str) -> int: ...


class Presence(ABC):
    """Who is connected: async, because a backend that spans processes asks its broker."""

    @abstractmethod
    async def count(self) -> int:
        """Sockets connected."""

    @abstractmethod
    async def client_ids(self) -> list[str]:
        """Client ids with at least one socket (sorted)."""

    @abstractmethod
    async def group_members(self, group: str) -> list[str]:
        """Client ids with a socket in ``group`` (sorted)."""

    @abstractmethod
    async def group_size(self, group: str) -> int:
        """Sockets in ``group``."""

    @abstractmethod
    async def is_online(self, client_id: str) -> bool:
        """Whether ``client_id`` has a socket."""


class LocalPresence(Presence):
    """Presence of this process alone (the in-memory backend's), once it has a roster."""

    def __init__(self, roster: Roster | None = None) -> None:
        self.roster = roster

    def _sockets(self) -> Roster:
        if self.roster is None:
            raise StateError("the backend is not bound to a hub")
        return self.roster

    async def count(self) -> int:
        return len(self._sockets())

    async def client_ids(self) -> list[str]:
        return sorted(self._sockets().client_ids())

    async def group_members(self, group: str) -> list[str]:
        return sorted({entry.client_id for entry in self._sockets().members(group)})

    async def group_size(self, group: str) -> int:
        return len(self._sockets().members(group))

    async def is_online(self, client_id: str) -> bool:
        return self._sockets().count_client(client_id) > 0


class Backend(ABC):
    """Carries hub sends to every process, answers for presence, and keeps the sessions."""

    sessions: SessionStore
    """Resumable sessions kept in this process (their replay buffers, client ids, groups and
    user data): the in-memory backend's."""
    shared_sessions: SharedSessions | None = None
    """Resumable sessions kept in the broker, for a backend that spans processes (then
    ``sessions`` stays empty)."""
    presence: Presence
    """Who is connected (``hub.presence``)."""

    @abstractmethod
    def bind(self, local: LocalDelivery, roster: Roster) -> None:
        """Deliver the sends that reach this process through ``local``; ``roster`` is this
        process's sockets (called once, by the hub)."""

    async def start(self) -> None:  # noqa: B027 - a backend with nothing to start keeps this
        """Connect (lifespan startup, or the first connection without a lifespan)."""

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

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """What ``hub.stats()["backend"]`` shows."""
