"""Backend URLs: which are accepted, and how they are shown without their password."""

from __future__ import annotations

from urllib.parse import urlsplit

BACKEND_SCHEMES = ("memory", "redis", "rediss", "unix")


def backend_url_problem(url: str) -> str | None:
    """What is wrong with a ``backend_url``, or ``None``."""
    scheme, _, rest = url.partition("://")
    forms = "memory://, redis://[:password@]host[:port][/db], rediss://... or unix:///path"
    if (not rest and scheme != "memory") or scheme.lower() not in BACKEND_SCHEMES:
        return f"not a backend URL: use {forms}"
    scheme = scheme.lower()
    if scheme == "memory" and rest not in ("", "/"):
        return "memory:// takes nothing after the scheme"
    if scheme in ("redis", "rediss"):
        host = urlsplit(url).hostname
        if not host:
            return f"{scheme}:// needs a host, e.g. {scheme}://127.0.0.1:6379/0"
        try:
            urlsplit(url).port  # noqa: B018 - raises on a bad port
        except ValueError:
            return "the port must be a number from 0 to 65535"
    if scheme == "unix" and not urlsplit(url).path:
        return "unix:// needs the socket's path, e.g. unix:///run/redis/redis.sock"
    return None


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: for logs, errors and stats.

    The user information ends at the last ``@`` (a password may hold ``@`` or ``/`` when it was
    not percent-encoded), and spaces around the URL do not hide it."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return text
    user, colon, _ = rest[:at].partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{rest[at + 1 :]}"
