"""Shared fixtures: server kinds, app flavours and a websockets client factory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from .servers import SERVER_KINDS


@pytest.fixture(params=SERVER_KINDS)
def server_kind(request: pytest.FixtureRequest) -> str:
    """Each real server: uvicorn with each WebSocket implementation, and hypercorn."""
    return str(request.param)


@pytest.fixture(params=("starlette", "fastapi"))
def flavour(request: pytest.FixtureRequest) -> str:
    """A plain Starlette app and a FastAPI app."""
    return str(request.param)


def client(url: str, **kwargs: Any) -> Any:
    """A ``websockets`` client with protocol pings off (they are not what we test)."""
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 2)
    kwargs.setdefault("proxy", None)
    return connect(url, **kwargs)


async def recv_until(ws: ClientConnection, want: str, timeout: float) -> list[str | bytes]:
    """Everything received until a frame equal to ``want`` (inclusive), within ``timeout``."""
    seen: list[str | bytes] = []

    async def collect() -> list[str | bytes]:
        while True:
            frame = await ws.recv()
            seen.append(frame)
            if frame == want:
                return seen

    return await asyncio.wait_for(collect(), timeout)
