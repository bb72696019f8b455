"""HTTP requests pass through the middleware unchanged."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..servers import serve


def bare(app: Any) -> Any:
    """``app`` with its middleware stack stripped (the same routes, no stabilizer)."""
    assert isinstance(app, Starlette)
    app.user_middleware = []
    return app


async def fetch_all(base: str) -> list[tuple[int, dict[str, str], bytes]]:
    results = []
    async with httpx.AsyncClient(base_url=base) as http:
        for method, path, body in (
            ("GET", "/plain", b""),
            ("POST", "/plain", b"x" * 100_000),
            ("GET", "/stream", b""),
            ("GET", "/missing", b""),
        ):
            response = await http.request(method, path, content=body)
            headers = {k: v for k, v in response.headers.items() if k not in ("date", "server")}
            results.append((response.status_code, headers, response.content))
    return results


async def test_http_unchanged(server_kind: str, flavour: str) -> None:
    """Status, headers and bodies (streamed included) match the same app without middleware."""
    hub = Hub()
    with_mw, _ = build(flavour, hub)
    without_mw, _ = build(flavour, Hub())
    async with serve(with_mw, server_kind) as url:
        ours = await fetch_all(url.replace("ws://", "http://"))
    async with serve(bare(without_mw), server_kind) as url:
        theirs = await fetch_all(url.replace("ws://", "http://"))
    assert ours == theirs
    assert ours[2][2] == b"".join(f"chunk {i}\n".encode() for i in range(5))


async def test_http_sees_the_hub(server_kind: str) -> None:
    """request.state.stabilizer is the hub on HTTP routes."""
    hub = Hub()
    app, _ = build("fastapi", hub)
    async with serve(app, server_kind) as url:
        async with httpx.AsyncClient(base_url=url.replace("ws://", "http://")) as http:
            stats = (await http.get("/stats")).json()
    assert stats["connections"] == 0
    assert set(stats) >= {"accepted", "rejected", "closes", "messages_in", "rtt"}
