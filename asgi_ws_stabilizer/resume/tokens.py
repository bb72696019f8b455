"""Resume tokens: HMAC-SHA256 signed, carrying a session id, a client id and an expiry.

A token is ``<payload>.<mac>``, both unpadded base64url; the payload is compact JSON
``{"v":1,"sid":…,"cid":…,"exp":…,"n":…}`` (``n`` a random nonce, so every token is unique and
can be spent once). Any characters in the ids are safe: they are JSON-encoded, never split on.
Tokens made by one process validate in another that shares ``secret_key``. Decisions are
synchronous and take ``now`` (wall-clock seconds: tokens outlive processes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from ..config.env import env_var
from ..errors import InvalidTokenError, SettingsError, TokenExpiredError, TokenSpentError

VERSION = 1


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says."""

    session_id: str
    client_id: str
    expires_at: float
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Makes and checks tokens with one key."""

    def __init__(self, key: bytes, ttl: float) -> None:
        """Sign with ``key`` (``secret_key``, encoded); tokens last ``ttl`` seconds.

        Raises:
            SettingsError: ``key`` is shorter than 16 bytes.
        """
        if len(key) < 16:
            message = "the token key must be at least 16 bytes"
            raise SettingsError([("secret_key", env_var("secret_key"), message)])
        self._key = key
        self.ttl = ttl

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, session_id: str, client_id: str, now: float) -> str:
        """A fresh token for ``session_id``, valid for ``ttl`` seconds from ``now``."""
        claims = {
            "v": VERSION,
            "sid": session_id,
            "cid": client_id,
            "exp": round(now + self.ttl, 3),
            "n": secrets.token_urlsafe(12),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float) -> TokenClaims:
        """The claims of ``token``.

        Raises:
            InvalidTokenError: malformed, forged or tampered with (checked in constant time).
            TokenExpiredError: genuine but past its expiry.
        """
        if (
            not isinstance(token, str)
            or not token.isascii()
            or token.count(".") != 1
            or len(token) > 4096
        ):
            raise InvalidTokenError("malformed resume token")
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise InvalidTokenError("resume token signature does not match")
        try:
            claims = json.loads(_unb64(payload))
            sid, cid, exp, nonce = claims["sid"], claims["cid"], claims["exp"], claims["n"]
            version = claims["v"]
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InvalidTokenError("resume token payload is malformed") from None
        if version != VERSION or not all(isinstance(x, str) for x in (sid, cid, nonce)):
            raise InvalidTokenError("resume token payload is malformed")
        if not isinstance(exp, int | float):
            raise InvalidTokenError("resume token payload is malformed")
        if now >= exp:
            raise TokenExpiredError(f"resume token expired {now - exp:.0f} s ago")
        return TokenClaims(session_id=sid, client_id=cid, expires_at=float(exp), nonce=nonce)


class SpentTokens:
    """Nonces of tokens already used, kept until they would have expired anyway.

    Its size is bounded by the resume rate times ``reconnect_token_ttl``: expired nonces are
    dropped at most once a minute (a spent token that has expired is refused as expired).
    """

    PRUNE_EVERY = 60.0

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._spent)

    def is_spent(self, claims: TokenClaims, now: float) -> bool:
        """Whether the token was used before (nothing is changed)."""
        return claims.nonce in self._spent

    def spend(self, claims: TokenClaims, now: float) -> None:
        """Mark the token used.

        Raises:
            TokenSpentError: it was used before.
        """
        if now >= self._next_prune:
            self._spent = {n: exp for n, exp in self._spent.items() if exp > now}
            self._next_prune = now + self.PRUNE_EVERY
        if claims.nonce in self._spent:
            raise TokenSpentError("resume token was already used")
        self._spent[claims.nonce] = claims.expires_at
