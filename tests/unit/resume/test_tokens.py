"""Resume tokens: signed, expiring, single-use, safe with any id characters."""

from __future__ import annotations

import base64
import json

import pytest

from asgi_ws_stabilizer.errors import (
    InvalidTokenError,
    SettingsError,
    TokenExpiredError,
    TokenSpentError,
)
from asgi_ws_stabilizer.resume.tokens import SpentTokens, TokenSigner

KEY = b"k" * 32


def test_round_trip_with_any_characters() -> None:
    """A token carries session and client ids with any characters, dots and quotes included."""
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue('s.1"\n', "client.with.dots é", now=1000)
    claims = signer.verify(token, now=1059)
    assert claims.session_id == 's.1"\n'
    assert claims.client_id == "client.with.dots é"
    assert claims.expires_at == 1060


def test_expired_token() -> None:
    """A genuine token past its expiry raises TokenExpiredError (an InvalidTokenError)."""
    signer = TokenSigner(KEY, ttl=60)
    token = signer.issue("s", "c", now=1000)
    with pytest.raises(TokenExpiredError):
        signer.verify(token, now=1060)
    assert issubclass(TokenExpiredError, InvalidTokenError)


def test_other_key_rejects() -> None:
    """A token signed with another key is invalid; one signed with the same key validates."""
    token = TokenSigner(KEY, ttl=60).issue("s", "c", now=0)
    with pytest.raises(InvalidTokenError):
        TokenSigner(b"x" * 32, ttl=60).verify(token, now=1)
    assert TokenSigner(KEY, ttl=10).verify(token, now=1).session_id == "s"


def test_tampered_payload_rejected() -> None:
    """Changing the payload (say, another session id) breaks the signature."""
    signer = TokenSigner(KEY, ttl=60)
    payload, mac = signer.issue("mine", "c", now=0).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sid"] = "theirs"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError, match="signature"):
        signer.verify(f"{forged}.{mac}", now=1)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "....", "x" * 5000, "é.é"])
def test_malformed_tokens(token: str) -> None:
    """Garbage is an InvalidTokenError, never another exception."""
    with pytest.raises(InvalidTokenError):
        TokenSigner(KEY, ttl=60).verify(token, now=0)


def test_tokens_are_unique() -> None:
    """Two tokens for the same session differ (each carries its own nonce)."""
    signer = TokenSigner(KEY, ttl=60)
    assert signer.issue("s", "c", now=0) != signer.issue("s", "c", now=0)


def test_spent_once() -> None:
    """A token can be spent once; a second spend raises TokenSpentError."""
    signer = TokenSigner(KEY, ttl=60)
    spent = SpentTokens()
    claims = signer.verify(signer.issue("s", "c", now=0), now=1)
    spent.spend(claims, now=1)
    with pytest.raises(TokenSpentError):
        spent.spend(claims, now=2)


def test_spent_nonces_are_pruned_after_expiry() -> None:
    """Nonces of expired tokens are forgotten (an expired token is refused anyway)."""
    signer = TokenSigner(KEY, ttl=60)
    spent = SpentTokens()
    spent.spend(signer.verify(signer.issue("s", "c", now=0), now=1), now=1)
    assert len(spent) == 1
    spent.spend(signer.verify(signer.issue("t", "c", now=200), now=201), now=201)
    assert len(spent) == 1


def test_short_key_refused() -> None:
    """A key shorter than 16 bytes is refused with a ``SettingsError`` (a ``ValueError``) that
    names ``secret_key``."""
    with pytest.raises(SettingsError, match="16 bytes") as info:
        TokenSigner(b"short", ttl=60)
    assert isinstance(info.value, ValueError)
    assert [(field, env) for field, env, _ in info.value.problems] == [
        ("secret_key", "WS_STABILIZER_SECRET_KEY")
    ]
