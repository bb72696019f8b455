"""Sessions for resumption: what a client gets back when it reconnects with its token.

A session outlives its socket: when an opted-in connection drops, the session keeps its client
id, user data, groups and replay buffer for ``session_ttl`` seconds, and every message addressed
to it meanwhile (direct, group, broadcast) goes into the buffer. Everything here is synchronous
and takes ``now``; the hub drives it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from starlette.types import Message


class ResumeBuffer:
    """The data messages sent in a session, numbered from 1, bounded in payload bytes.

    It keeps messages already written to the socket too: a cut loses whatever was in flight,
    and the client's count says what actually arrived. The oldest are dropped first.
    """

    __slots__ = ("_frames", "bytes", "limit", "sent")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: deque[tuple[int, Message, int]] = deque()
        self.bytes = 0
        self.sent = 0
        """Data messages sent in the session so far (the last one's number)."""

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def first(self) -> int:
        """Number of the oldest message still held (``sent + 1`` when empty)."""
        return self._frames[0][0] if self._frames else self.sent + 1

    def append(self, message: Message, size: int) -> int:
        """Record a data message; returns its number."""
        self.sent += 1
        self._frames.append((self.sent, message, size))
        self.bytes += size
        while self.bytes > self.limit and self._frames:
            _, _, dropped = self._frames.popleft()
            self.bytes -= dropped
        return self.sent

    def since(self, received: int) -> tuple[list[Message], int]:
        """What a client that received ``received`` messages needs: the messages still held
        after that count, in order, and how many it needed that are no longer held."""
        if received >= self.sent or received < 0:
            return [], 0
        missed = max(0, self.first - received - 1)
        return [message for seq, message, _ in self._frames if seq > received], missed


class Session:
    """One client's session, with or without a socket attached."""

    shared = False
    """Kept in a broker (``SharedSession``) rather than in this process."""

    __slots__ = (
        "buffer",
        "client_id",
        "connection_id",
        "ended",
        "expires_at",
        "groups",
        "offset",
        "session_id",
        "user_data",
    )

    def __init__(self, session_id: str, client_id: str, buffer_limit: int) -> None:
        self.session_id = session_id
        self.client_id = client_id
        self.buffer = ResumeBuffer(buffer_limit)
        self.offset = 0
        """Messages the client missed on earlier resumes: its count plus this is our number."""
        self.user_data: dict[str, Any] = {}
        self.groups: set[str] = set()
        self.connection_id: str | None = None
        """The id of the socket serving it, or ``None`` while the client is away."""
        self.expires_at: float | None = None
        """When a detached session is forgotten (``None`` while attached)."""
        self.ended = False
        """Forgotten (expired): it takes no more messages."""

    def keep(self, message: Message, size: int) -> None:
        """Keep a message its client cannot take now (away, or its socket not open yet): it
        goes out in the replay when the client resumes."""
        if not self.ended:
            self.buffer.append(message, size)

    def record(self, message: Message, size: int) -> None:
        """Record a data message written to its socket (a cut may lose it in flight)."""
        self.buffer.append(message, size)


class SharedSession(Session):
    """A session kept in the broker: its socket's process records nothing itself (the broker's
    log has every message before the socket does)."""

    __slots__ = ()
    shared = True

    def __init__(self, session_id: str, client_id: str) -> None:
        super().__init__(session_id, client_id, 0)

    def keep(self, message: Message, size: int) -> None:
        pass

    def record(self, message: Message, size: int) -> None:
        pass


class SessionStore:
    """Every session of the process, and the detached ones by client id and group."""

    def __init__(self, ttl: float, buffer_limit: int) -> None:
        self.ttl = ttl
        self.buffer_limit = buffer_limit
        self._sessions: dict[str, Session] = {}
        self._detached: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, session_id: str, client_id: str) -> Session:
        """A new session, attached (its socket is being admitted)."""
        session = Session(session_id, client_id, self.buffer_limit)
        self._sessions[session_id] = session
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        """The session, unless unknown or expired."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at is not None and now >= session.expires_at:
            self.forget(session)
            return None
        return session

    def attach(self, session: Session, connection_id: str) -> None:
        """The socket ``connection_id`` serves ``session`` from now on."""
        session.connection_id = connection_id
        session.expires_at = None
        self._detached.pop(session.session_id, None)

    def detach(self, session: Session, now: float) -> None:
        """The client has gone: keep the session for ``ttl`` seconds."""
        session.connection_id = None
        session.expires_at = now + self.ttl
        self._detached[session.session_id] = session

    def forget(self, session: Session) -> None:
        """Drop a session for good."""
        session.ended = True
        self._sessions.pop(session.session_id, None)
        self._detached.pop(session.session_id, None)

    def expire(self, now: float) -> int:
        """Forget detached sessions past their time; returns how many."""
        gone = [
            s for s in self._detached.values() if s.expires_at is not None and now >= s.expires_at
        ]
        for session in gone:
            self.forget(session)
        return len(gone)

    def detached(self) -> list[Session]:
        """Sessions whose client is away (a snapshot)."""
        return list(self._detached.values())

    def detached_of_client(self, client_id: str) -> list[Session]:
        """Away sessions of ``client_id``."""
        return [s for s in self._detached.values() if s.client_id == client_id]

    def detached_in_group(self, group: str) -> list[Session]:
        """Away sessions that were in ``group``."""
        return [s for s in self._detached.values() if group in s.groups]

    def buffered_bytes(self) -> int:
        """Bytes held in every session's replay buffer."""
        return sum(s.buffer.bytes for s in self._sessions.values())
