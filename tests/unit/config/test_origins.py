"""Origin rules: origins normalised, and compared with the Host header."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.config.origins import normalise_origin, same_origin


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM", "https://example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("wss://example.com:443", "wss://example.com"),
        ("http://example.com:8080", "http://example.com:8080"),
        ("https://example.com:80", "https://example.com:80"),
        ("  https://example.com  ", "https://example.com"),
        ("example.com", None),
        ("null", None),
        ("https://", None),
        ("https://example.com:99999", None),
        ("https://example.com:port", None),
    ],
)
def test_normalise_origin(origin: str, expected: str | None) -> None:
    """Origins are lower-cased without their default port; malformed ones give ``None``."""
    assert normalise_origin(origin) == expected


@pytest.mark.parametrize(
    ("origin", "host", "expected"),
    [
        ("https://example.com", "example.com", True),
        ("http://example.com", "example.com", True),
        ("https://example.com", "example.com:443", True),
        ("http://example.com", "example.com:80", True),
        ("http://example.com:8000", "example.com:8000", True),
        ("HTTPS://EXAMPLE.com", "Example.COM", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("https://example.com", "example.com:80", False),
        ("http://example.com", "example.com:8000", False),
        ("http://example.com:8000", "example.com", False),
        ("https://evil.com", "example.com", False),
        ("https://example.com.evil.com", "example.com", False),
        ("https://example.com", None, False),
        ("https://example.com", "", False),
        ("null", "example.com", False),
        ("garbage", "example.com", False),
        ("https://example.com", "example.com:bad", False),
    ],
)
def test_same_origin(origin: str, host: str | None, expected: bool) -> None:
    """Same-origin compares host and port (default port per scheme) with the Host header."""
    assert same_origin(origin, host) is expected
