"""The JavaScript client ships with the package."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.client_js import client_source


def test_declarations_ship_too() -> None:
    """The TypeScript declarations are in the package; unknown names are refused."""
    assert "StabilizedSocket" in client_source("stabilizer.d.ts")
    with pytest.raises(ValueError, match="no client file"):
        client_source("other.js")
