"""Sending a refusal: the WebSocket Denial Response extension (an HTTP status with headers and a
body) where the server offers it, else ``websocket.close`` before accept, which every server
turns into HTTP 403."""

from __future__ import annotations

from typing import Any

from starlette.types import Send

from ..core.admission import Refusal


async def deny(scope: Any, send: Send, refusal: Refusal) -> None:
    """Refuse the handshake. Never call ``receive()`` afterwards: granian never answers it."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-stabilizer-reason", refusal.reason.encode()),
        ]
        if refusal.retry_after is not None:
            headers.append((b"retry-after", str(refusal.retry_after).encode()))
        await send(
            {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
        )
        # One chunk only: granian rejects more_body=True.
        await send(
            {
                "type": "websocket.http.response.body",
                "body": refusal.detail.encode(),
                "more_body": False,
            }
        )
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason})
