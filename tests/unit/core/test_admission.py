"""Admission.check and its origin policies: every refusal, and the order they are checked in."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_ws_stabilizer import Refusal, StabilizerSettings
from asgi_ws_stabilizer.core.admission import (
    CLIENT_ID_PATTERN,
    Admission,
    Handshake,
)


def handshake(
    origin: str | None = None,
    host: str | None = "example.com",
    client_id: str | None = None,
    remote_ip: str = "10.0.0.1",
) -> Handshake:
    return Handshake(origin=origin, host=host, client_id=client_id, remote_ip=remote_ip)


def check(
    admission: Admission,
    hs: Handshake,
    *,
    total: int = 0,
    per_ip: int = 0,
    per_client: int = 0,
    draining: bool = False,
) -> Refusal | None:
    return admission.check(hs, total=total, per_ip=per_ip, per_client=per_client, draining=draining)


# -- origins ---------------------------------------------------------------------------------


def test_no_origin_header_is_allowed() -> None:
    """A client without an Origin header (not a browser) passes every origin policy."""
    for origins in (None, ["https://a.example"], ["*"]):
        admission = Admission(StabilizerSettings(allowed_origins=origins))
        assert admission.origin_allowed(None, "example.com")


def test_default_policy_is_same_origin() -> None:
    """Without ``allowed_origins`` only the origin of the Host the client connected to passes."""
    admission = Admission(StabilizerSettings())
    assert admission.origin_allowed("https://example.com", "example.com")
    assert not admission.origin_allowed("https://evil.com", "example.com")


def test_default_policy_refuses_null_origin() -> None:
    """Without ``allowed_origins`` the opaque ``null`` origin is refused."""
    assert not Admission(StabilizerSettings()).origin_allowed("null", "example.com")


def test_star_allows_any_origin() -> None:
    """``*`` in ``allowed_origins`` lets any origin in, ``null`` and cross-site ones included."""
    admission = Admission(StabilizerSettings(allowed_origins=["*"]))
    assert admission.origin_allowed("https://evil.com", "example.com")
    assert admission.origin_allowed("null", "example.com")


def test_explicit_list_allows_only_listed_origins() -> None:
    """With a list, listed origins pass (case and default port aside) and the Host is ignored."""
    admission = Admission(
        StabilizerSettings(allowed_origins=["https://app.example", "http://localhost:3000"])
    )
    assert admission.origin_allowed("https://APP.example:443", "api.example")
    assert admission.origin_allowed("http://localhost:3000", "api.example")
    assert not admission.origin_allowed("http://localhost:3001", "api.example")
    assert not admission.origin_allowed("http://app.example", "api.example")
    assert not admission.origin_allowed("https://api.example", "api.example")
    assert not admission.origin_allowed("null", "api.example")
    assert not admission.origin_allowed("garbage", "api.example")


def test_ipv6_origin_in_list() -> None:
    """A listed IPv6 origin matches the same origin sent by a browser."""
    admission = Admission(StabilizerSettings(allowed_origins=["http://[::1]:8000"]))
    assert admission.origin_allowed("http://[::1]:8000", "api.example")
    assert not admission.origin_allowed("http://[::1]:8001", "api.example")


def test_malformed_origin_never_allowed_by_a_list() -> None:
    """A malformed Origin header is refused even when one listed origin failed to parse."""
    settings = StabilizerSettings.model_construct(
        allowed_origins=["https://example.com:99999", "https://app.example"]
    )
    assert not Admission(settings).origin_allowed("garbage", "api.example")


def test_null_origin_allowed_when_listed() -> None:
    """``null`` in the allowed list lets the opaque origin of sandboxed pages in."""
    admission = Admission(StabilizerSettings(allowed_origins=["null"]))
    assert admission.origin_allowed("null", "example.com")
    assert admission.origin_allowed(" NULL ", "example.com")
    assert not admission.origin_allowed("https://example.com", "example.com")


# -- client ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", ["alice", "a" * 128, "user@example.com", "x:1.2_3~4-5"])
def test_client_id_pattern_accepts(client_id: str) -> None:
    """URL-safe ids of 1 to 128 characters are well formed."""
    assert CLIENT_ID_PATTERN.fullmatch(client_id)


@pytest.mark.parametrize("client_id", ["", "a" * 129, "a b", "a/b", "a\nb", "ä", "<script>"])
def test_client_id_pattern_rejects(client_id: str) -> None:
    """Empty, over-long or non-URL-safe ids are malformed."""
    assert not CLIENT_ID_PATTERN.fullmatch(client_id)


# -- check -----------------------------------------------------------------------------------


def test_admits_by_default() -> None:
    """With default settings an ordinary handshake is admitted."""
    assert check(Admission(StabilizerSettings()), handshake(client_id="alice")) is None


def test_draining_refused_503_with_retry_after() -> None:
    """While draining every handshake gets 503 ``draining`` with ``Retry-After``."""
    refusal = check(Admission(StabilizerSettings(retry_after=9)), handshake(), draining=True)
    assert refusal == Refusal(503, "draining", "server is draining", 9)


def test_origin_refused_403_without_retry_after() -> None:
    """A disallowed origin gets 403 ``origin_not_allowed`` and no ``Retry-After``."""
    refusal = check(Admission(StabilizerSettings()), handshake(origin="https://evil.com"))
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (
        403,
        "origin_not_allowed",
        None,
    )


def test_bad_client_id_refused_400() -> None:
    """A malformed client id gets 400 ``bad_client_id`` with a detail that says what is allowed."""
    refusal = check(Admission(StabilizerSettings()), handshake(client_id="no spaces"))
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (400, "bad_client_id", None)
    assert "1-128" in refusal.detail


def test_ip_limit_refused_429() -> None:
    """At ``max_connections_per_ip`` sockets from an address, the next gets 429 ``ip_limit``."""
    admission = Admission(StabilizerSettings(max_connections_per_ip=2, retry_after=3))
    assert check(admission, handshake(), per_ip=1) is None
    refusal = check(admission, handshake(), per_ip=2)
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (429, "ip_limit", 3)


def test_client_limit_refused_429() -> None:
    """At ``max_connections_per_client`` sockets of a client, the next gets 429 ``client_limit``."""
    admission = Admission(StabilizerSettings(max_connections_per_client=1, retry_after=4))
    assert check(admission, handshake(client_id="a"), per_client=0) is None
    refusal = check(admission, handshake(client_id="a"), per_client=1)
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (429, "client_limit", 4)


def test_server_full_refused_503() -> None:
    """At ``max_connections`` sockets, the next gets 503 ``server_full``."""
    admission = Admission(StabilizerSettings(max_connections=10, retry_after=6))
    assert check(admission, handshake(), total=9) is None
    refusal = check(admission, handshake(), total=10)
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (503, "server_full", 6)


def test_limits_off_admit_any_count() -> None:
    """With the limits off (the default) no count refuses a handshake."""
    admission = Admission(StabilizerSettings())
    assert check(admission, handshake(), total=10**6, per_ip=10**6, per_client=10**6) is None


def test_refusals_checked_in_order() -> None:
    """Draining, then origin, then client id, then per-IP, per-client and total limits."""
    admission = Admission(
        StabilizerSettings(
            max_connections=1, max_connections_per_ip=1, max_connections_per_client=1
        )
    )
    everything_wrong: dict[str, Any] = {"total": 1, "per_ip": 1, "per_client": 1}
    bad = handshake(origin="https://evil.com", client_id="bad id")
    assert _reason(check(admission, bad, draining=True, **everything_wrong)) == "draining"
    assert _reason(check(admission, bad, **everything_wrong)) == "origin_not_allowed"
    bad = handshake(client_id="bad id")
    assert _reason(check(admission, bad, **everything_wrong)) == "bad_client_id"
    ok = handshake(client_id="good")
    assert _reason(check(admission, ok, **everything_wrong)) == "ip_limit"
    assert _reason(check(admission, ok, total=1, per_client=1)) == "client_limit"
    assert _reason(check(admission, ok, total=1)) == "server_full"


def _reason(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.reason


# -- Handshake.from_scope ---------------------------------------------------------------------


def test_handshake_from_scope() -> None:
    """Origin, Host, the client id query parameter and the peer address are read from the scope."""
    scope = {
        "headers": [(b"host", b"api.example"), (b"origin", b"https://app.example")],
        "query_string": b"x=1&client_id=alice&client_id=bob",
        "client": ("10.1.2.3", 5555),
    }
    assert Handshake.from_scope(scope, "client_id") == Handshake(
        origin="https://app.example", host="api.example", client_id="alice", remote_ip="10.1.2.3"
    )


def test_handshake_from_bare_scope() -> None:
    """A scope without headers, query or client gives no origin, no client id and ``unknown``."""
    assert Handshake.from_scope({}, "client_id") == Handshake(
        origin=None, host=None, client_id=None, remote_ip="unknown"
    )


def test_handshake_client_id_param_off() -> None:
    """With ``client_id_param`` off the query string is ignored."""
    scope = {"query_string": b"client_id=alice"}
    assert Handshake.from_scope(scope, None).client_id is None


def test_handshake_blank_client_id_kept() -> None:
    """An empty ``client_id=`` is kept as ``""`` so that admission refuses it, not ignores it."""
    assert Handshake.from_scope({"query_string": b"client_id="}, "client_id").client_id == ""
