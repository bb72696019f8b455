"""Origin parsing and comparison for the Origin check (RFC 6454 serialisation)."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _split_origin(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def normalise_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or ``None`` if malformed."""
    split = _split_origin(origin.strip())
    if split is None:
        return None
    scheme, host, port = split
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets (RFC 3986 section 3.2.2)
    if port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same_origin(origin: str, host_header: str | None) -> bool:
    """Whether ``origin`` names the host the client connected to (its Host header)."""
    split = _split_origin(origin)
    if split is None or not host_header:
        return False
    scheme, host, port = split
    try:
        target = urlsplit("//" + host_header.strip())
        target_port = target.port
    except ValueError:
        return False
    if (target.hostname or "").lower() != host:
        return False
    if target_port is None:
        return port == _DEFAULT_PORTS.get(scheme)
    return target_port == port
