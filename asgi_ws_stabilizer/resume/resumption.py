"""Resumption: binding an opted-in socket to a session, new or resumed.

The client opts in with ``_stabilizer=1`` and resumes with ``_stabilizer_token`` and
``_stabilizer_seq`` (the data messages it received in that session). A token that does not
resume confers nothing of the session it names (not its client id, groups, data or messages):
the client gets a fresh session, and the reason is on the handle and in the log.

Binding happens in two steps with no ``await`` between them, so that admission counts the
socket under the identity it will actually get: ``plan`` looks at the token and the session
without changing anything, admission runs, then ``bind`` spends the token and takes the
session over. The replay itself is cut at accept (``Binding.replay_at_accept``): until then the
session keeps every message sent to it in its buffer, as it does while its client is away.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message

from ..config.settings import StabilizerSettings
from ..errors import InvalidTokenError, TokenExpiredError
from .sessions import Session, SessionStore
from .tokens import SpentTokens, TokenClaims, TokenSigner

RESUME_REASONS = (
    "invalid_token",
    "token_expired",
    "token_spent",
    "session_unknown",
    "seq_ahead",
)
"""Why a resume was refused. ``seq_ahead``: the client claims to have received more data
messages than the session ever sent, so its count cannot be trusted to cut the replay."""


@dataclass(frozen=True)
class Plan:
    """What a resume request would do, decided without changing anything."""

    session: Session | None = None
    """The session it would resume, when kept in this process."""
    claims: TokenClaims | None = None
    reason: str | None = None
    """Why it would not resume (``None`` when it would, or was not asked to)."""
    client_id: str | None = None
    """The client id of the session it would resume."""
    replaces: str | None = None
    """The connection id of a socket of this process that serves the session now."""

    @property
    def resumes(self) -> bool:
        """Whether it would resume a session."""
        return self.client_id is not None and self.reason is None


@dataclass
class Binding:
    """The outcome of binding a socket to a session."""

    session: Session
    resumed: bool = False
    reason: str | None = None
    """``None`` when resumed or not asked for, else one of ``RESUME_REASONS``."""
    received: int = 0
    """The client's count of data messages received in the session (resumed only)."""
    replaced: str | None = None
    """The id of the socket that served the session until now (half-open), to be closed 4409."""
    accepted: bool = False
    """Whether the socket was accepted (and the replay cut)."""
    replayed: int = 0
    """Messages in the replay (known once accepted)."""
    missed: int = 0
    """Messages the client needed that the buffer no longer had (known once accepted)."""

    def replay_at_accept(self) -> list[Message]:
        """Cut the replay now: the messages the client still needs (``missed`` counts those the
        buffer no longer holds). Call once, when the socket is accepted."""
        self.accepted = True
        if not self.resumed:
            return []
        session = self.session
        replay, self.missed = session.buffer.since(self.received + session.offset)
        session.offset += self.missed
        self.replayed = len(replay)
        return replay


@dataclass
class SharedBinding(Binding):
    """The binding of a socket to a session kept in a broker: the broker cut the replay when
    it handed the session over, and numbers every message after it."""

    seq: int = 0
    """The number of the last data message given to the socket (or held for its accept)."""
    offset: int = 0
    replay: list[Message] = field(default_factory=list)
    pending: list[Message] = field(default_factory=list)
    """Messages after the replay that came before the socket was accepted."""

    def replay_at_accept(self) -> list[Message]:
        self.accepted = True
        frames, self.replay, self.pending = self.replay + self.pending, [], []
        self.replayed = len(frames)
        return frames


class Resumption:
    """Tokens, spent nonces and sessions of one hub."""

    def __init__(self, settings: StabilizerSettings, store: SessionStore) -> None:
        secret = settings.secret_key
        self.random_key = secret is None
        key = secrets.token_bytes(32) if secret is None else secret.get_secret_value().encode()
        self.signer = TokenSigner(key, settings.reconnect_token_ttl)
        self.spent = SpentTokens()
        self.store = store
        """The sessions: the backend's store (see backends/base.py)."""

    def check(self, token: str | None, now: float) -> tuple[TokenClaims | None, str | None]:
        """Verify a token without spending it: its claims, or why it is refused."""
        if token is None:
            return None, None
        try:
            return self.signer.verify(token, now), None
        except TokenExpiredError:
            return None, "token_expired"
        except InvalidTokenError:
            return None, "invalid_token"

    def plan(self, token: str | None, received: int, now: float) -> Plan:
        """What resuming with ``token`` after ``received`` messages would do (changes nothing)."""
        claims, reason = self.check(token, now)
        if claims is None:
            return Plan(reason=reason)
        session = self.store.get(claims.session_id, now)
        if session is None:
            return Plan(reason="session_unknown")
        if self.spent.is_spent(claims, now):
            return Plan(reason="token_spent")
        if received + session.offset > session.buffer.sent:
            return Plan(reason="seq_ahead")
        return Plan(
            session=session,
            claims=claims,
            client_id=session.client_id,
            replaces=session.connection_id,
        )

    def bind(
        self, plan: Plan, session_id: str, client_id: str, received: int, now: float
    ) -> Binding:
        """Carry out ``plan``: resume its session (spending the token), or start
        ``session_id`` for ``client_id``."""
        session, claims = plan.session, plan.claims
        if session is not None and claims is not None:
            self.spent.spend(claims, now)
            return Binding(session, resumed=True, received=received, replaced=session.connection_id)
        return Binding(self.store.create(session_id, client_id), reason=plan.reason)

    def token(self, session: Session, now: float) -> str:
        """A fresh token for ``session``."""
        return self.signer.issue(session.session_id, session.client_id, now)


def control_frame(kind: str, **fields: Any) -> Message:
    """A ``{"$stabilizer": kind, …}`` text frame (never counted as data)."""
    body = json.dumps({"$stabilizer": kind, **fields}, separators=(",", ":"))
    return {"type": "websocket.send", "text": body}
