"""Fixtures of the logic tier."""

from __future__ import annotations

import os

import pytest

from asgi_ws_stabilizer.config.settings import ENV_PREFIX


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``WS_STABILIZER_*`` variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
