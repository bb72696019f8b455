"""Sessions kept by a backend that spans processes, so that a client resumes on any of them.

The in-memory backend keeps its sessions in the process (``resume/sessions.py``): a
``SessionStore``, decided on synchronously. A backend that spans processes keeps them in its
broker instead (``SharedSessions``): binding a socket to a session is then a round trip, every
hub send is appended to the logs of the sessions it reaches where the broker numbers it, and the
process that serves a session hands its socket exactly the messages the broker numbered for it,
in that order (``SessionHost.deliver``). An app's own send on such a socket takes the same path,
so the socket and the log never disagree on a message's number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import Message

from ..core.messages import Frame
from ..resume.resumption import Plan
from ..resume.tokens import TokenClaims


@dataclass(frozen=True)
class Held:
    """A session this process serves, as the broker must know it (written again after every
    reconnect: a broker that restarted without its data gets it back)."""

    session_id: str
    client_id: str
    connection_id: str
    seq: int
    """The number of the last data message its socket was given."""
    offset: int
    user_data: str
    """JSON."""
    groups: tuple[str, ...]


@dataclass
class Attached:
    """A session the broker handed over to a socket of this process (a resume)."""

    client_id: str
    user_data: dict[str, Any]
    groups: list[str]
    old_node: str
    """The process that served it until now ('' when its client was away)."""
    old_connection: str
    sent: int
    """Data messages sent in the session so far: the replay ends at this number."""
    missed: int
    offset: int
    replay: list[Message] = field(default_factory=list)


class SessionHost(Protocol):
    """The hub's side of shared sessions: the sockets that serve them in this process."""

    def session_of(self, connection_id: str) -> str | None:
        """The session the socket serves, if it serves one here."""
        ...

    def held(self) -> list[Held]:
        """The sessions this process serves now."""
        ...

    def served(self) -> int:
        """How many sessions this process serves now."""
        ...

    def lost(self, session_ids: Sequence[str]) -> None:
        """These sessions were resumed elsewhere while the broker was away: close their
        sockets here (4409)."""
        ...

    def deliver(self, frame: Frame, listed: Sequence[tuple[str, int]]) -> None:
        """Hand ``frame`` to the sockets of the listed sessions: ``(session id, number)``."""
        ...


class SharedSessions(ABC):
    """Sessions in the broker: found, handed over, created, changed and left by round trips."""

    node: str
    """This process's id in the broker."""

    @abstractmethod
    def host(self, host: SessionHost) -> None:
        """Report to ``host`` (called once, by the hub)."""

    @abstractmethod
    async def peek(self, claims: TokenClaims, received: int) -> Plan:
        """What resuming the session ``claims`` names would do (changes nothing).

        Raises:
            BackendUnavailableError: the broker cannot be asked now.
        """

    @abstractmethod
    async def attach(
        self, claims: TokenClaims, received: int, connection_id: str
    ) -> Attached | str:
        """Spend the token and hand the session to ``connection_id``: what it gets back, or why
        it is refused (one of ``RESUME_REASONS``).

        Raises:
            BackendUnavailableError: the broker cannot be asked now.
        """

    @abstractmethod
    async def create(self, session_id: str, client_id: str, connection_id: str) -> None:
        """A fresh session served by ``connection_id``.

        Raises:
            BackendUnavailableError: the broker cannot be asked now.
        """

    @abstractmethod
    async def send(self, session_id: str, connection_id: str, frame: Frame) -> int | None:
        """An app's own send on the session's socket: into its log, then to the socket. 1 when
        logged, 0 when ``connection_id`` no longer serves it, ``None`` while held."""

    @abstractmethod
    def save(self, session_id: str, connection_id: str, user_data: str) -> None:
        """Store the session's user data (JSON), if ``connection_id`` still serves it."""

    @abstractmethod
    def detach(self, session_id: str, connection_id: str, user_data: str) -> None:
        """The client left: keep the session for ``session_ttl`` with this user data."""

    @abstractmethod
    async def written(self) -> None:
        """Wait (briefly) until everything queued so far is in the broker."""
