"""``get_connection`` and ``get_hub``: with the middleware, without it, and with FastAPI."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import (
    ConnectionHandle,
    Hub,
    NotInstalledError,
    StabilizerMiddleware,
    get_connection,
    get_hub,
)


async def ws_endpoint(websocket: WebSocket) -> None:
    handle = get_connection(websocket)
    hub = get_hub(websocket)
    await websocket.accept()
    await websocket.send_json(
        {
            "client_id": handle.client_id,
            "same_hub": hub is handle.hub,
            "count": hub.connection_count,
        }
    )


async def stats_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"connections": get_hub(request).connection_count})


def starlette_app(*, installed: bool) -> Starlette:
    app = Starlette(
        routes=[Route("/stats", stats_endpoint), WebSocketRoute("/ws", ws_endpoint)],
    )
    if installed:
        app.add_middleware(StabilizerMiddleware)
    return app


def test_helpers_work_with_middleware() -> None:
    """With the middleware, the handle and hub are found on WebSockets and the hub on requests."""
    with TestClient(starlette_app(installed=True)) as client:
        with client.websocket_connect("/ws?client_id=alice") as ws:
            assert ws.receive_json() == {"client_id": "alice", "same_hub": True, "count": 1}
        assert client.get("/stats").json() == {"connections": 0}


def test_get_connection_without_middleware_raises() -> None:
    """Without the middleware ``get_connection`` raises ``NotInstalledError`` saying what to add."""
    client = TestClient(starlette_app(installed=False))
    with (
        pytest.raises(NotInstalledError, match=r"add_middleware\(StabilizerMiddleware\)"),
        client.websocket_connect("/ws"),
    ):
        pass


def test_get_hub_without_middleware_raises() -> None:
    """Without the middleware ``get_hub`` raises ``NotInstalledError``, a ``RuntimeError``."""
    client = TestClient(starlette_app(installed=False))
    with pytest.raises(NotInstalledError, match="not installed") as info:
        client.get("/stats")
    assert isinstance(info.value, RuntimeError)


def fastapi_app(*, installed: bool, hub: Hub | None = None) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket, stab: Annotated[ConnectionHandle, Depends(get_connection)]
    ) -> None:
        await websocket.accept()
        await websocket.send_text(stab.client_id)

    @app.get("/stats")
    async def stats(hub: Annotated[Hub, Depends(get_hub)]) -> dict[str, Any]:
        return hub.stats()

    if installed:
        if hub is None:
            app.add_middleware(StabilizerMiddleware)
        else:
            app.add_middleware(StabilizerMiddleware, hub=hub)
    return app


def test_fastapi_depends() -> None:
    """FastAPI's ``Depends`` resolves the handle on a WebSocket and the hub on a request."""
    hub = Hub()
    with TestClient(fastapi_app(installed=True, hub=hub)) as client:
        with client.websocket_connect("/ws?client_id=carol") as ws:
            assert ws.receive_text() == "carol"
        stats = client.get("/stats").json()
    assert stats["accepted"] == 1
    assert hub.stats()["accepted"] == 1


def test_fastapi_depends_without_middleware_raises() -> None:
    """Through ``Depends`` too, a missing middleware is a ``NotInstalledError``."""
    client = TestClient(fastapi_app(installed=False))
    with pytest.raises(NotInstalledError):
        client.get("/stats")
    with pytest.raises(NotInstalledError), client.websocket_connect("/ws"):
        pass


def test_denial_reaches_testclient_as_http_response() -> None:
    """Starlette's TestClient offers the denial extension and sees the 503 response."""
    hub = Hub()
    hub.pause_admission()
    client = TestClient(fastapi_app(installed=True, hub=hub))
    with pytest.raises(WebSocketDenialResponse) as info, client.websocket_connect("/ws"):
        pass
    assert info.value.status_code == 503
    assert info.value.headers["retry-after"] == "5"
    assert info.value.text == "server is draining"
