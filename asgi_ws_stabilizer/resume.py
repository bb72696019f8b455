"""Resumption: binding an opted-in socket to a session, new or resumed.

The client opts in with ``_stabilizer=1`` and resumes with ``_stabilizer_token`` and
``_stabilizer_seq`` (the data messages it received in that session). A bad token never restores
anyone's session: the client gets a fresh one, and the reason is on the handle and in the log.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message

from .errors import InvalidTokenError, TokenExpiredError, TokenSpentError
from .sessions import Session, SessionStore
from .settings import StabilizerSettings
from .tokens import SpentTokens, TokenClaims, TokenSigner

RESUME_REASONS = ("invalid_token", "token_expired", "token_spent", "session_unknown")


@dataclass
class Binding:
    """The outcome of binding a socket to a session."""

    session: Session
    resumed: bool = False
    reason: str | None = None
    """``None`` when resumed or not asked for, else one of ``RESUME_REASONS``."""
    replay: list[Message] = field(default_factory=list)
    missed: int = 0
    replaced: Any = None
    """The socket that served the session until now (half-open), to be closed 4409."""


class Resumption:
    """Tokens, spent nonces and sessions of one hub."""

    def __init__(self, settings: StabilizerSettings) -> None:
        secret = settings.secret_key
        self.random_key = secret is None
        key = secrets.token_bytes(32) if secret is None else secret.get_secret_value().encode()
        self.signer = TokenSigner(key, settings.reconnect_token_ttl)
        self.spent = SpentTokens()
        self.store = SessionStore(settings.session_ttl, settings.resume_buffer_size)

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

    def bind(
        self,
        session_id: str,
        client_id: str,
        claims: TokenClaims | None,
        reason: str | None,
        received: int,
        now: float,
    ) -> Binding:
        """Resume the session ``claims`` names, or start ``session_id`` for ``client_id``."""
        if claims is not None:
            session = self.store.get(claims.session_id, now)
            if session is None:
                reason = "session_unknown"
            else:
                try:
                    self.spent.spend(claims, now)
                except TokenSpentError:
                    reason = "token_spent"
                else:
                    replay, missed = session.buffer.since(received + session.offset)
                    session.offset += missed
                    return Binding(
                        session,
                        resumed=True,
                        replay=replay,
                        missed=missed,
                        replaced=session.connection,
                    )
        return Binding(self.store.create(session_id, client_id), reason=reason)

    def token(self, session: Session, now: float) -> str:
        """A fresh token for ``session``."""
        return self.signer.issue(session.session_id, session.client_id, now)


def control_frame(kind: str, **fields: Any) -> Message:
    """A ``{"$stabilizer": kind, …}`` text frame (never counted as data)."""
    body = json.dumps({"$stabilizer": kind, **fields}, separators=(",", ":"))
    return {"type": "websocket.send", "text": body}
