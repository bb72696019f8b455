"""Admission on the wire: limits, origins and client ids refused before the app runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import serve
from .test_heartbeat import wait_count


def without_denial_extension(app: Any) -> Any:
    """Wrap ``app`` so its scopes lack the WebSocket Denial Response extension."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = dict(scope)
            scope["extensions"] = {
                k: v
                for k, v in (scope.get("extensions") or {}).items()
                if k != "websocket.http.response"
            }
        await app(scope, receive, send)

    return wrapped


async def refused(url: str, **kwargs: Any) -> Any:
    """The HTTP response that refused the handshake to ``url``."""
    with pytest.raises(InvalidStatus) as info:
        async with client(url, **kwargs):
            pass
    return info.value.response


async def test_max_connections(server_kind: str, flavour: str) -> None:
    """Connection N+1 gets 503 with Retry-After and never reaches the app; a freed slot admits."""
    hub = Hub(heartbeat_interval=None, max_connections=2, retry_after=7)
    app, rec = build(flavour, hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/echo") as first, client(url + "/echo"):
            response = await refused(url + "/echo")
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "7"
            assert response.headers["X-Stabilizer-Reason"] == "server_full"
            assert rec.calls == 2
            await first.close()
            await wait_count(hub, 1, 2)
            async with client(url + "/echo") as third:
                await third.send("hi")
                assert await asyncio.wait_for(third.recv(), 3) == "hi"
    assert hub.stats()["rejected"] == {"server_full": 1}


async def test_refusal_without_extension_is_403(server_kind: str) -> None:
    """Where the server lacks websocket.http.response, a refusal is an HTTP 403."""
    hub = Hub(heartbeat_interval=None, max_connections=1)
    app, rec = build("starlette", hub)
    async with serve(without_denial_extension(app), server_kind) as url:
        async with client(url + "/echo"):
            response = await refused(url + "/echo")
            assert response.status_code == 403
        assert rec.calls == 1


async def test_per_ip_and_per_client_limits(server_kind: str) -> None:
    """Per-IP and per-client limits refuse with 429 and Retry-After."""
    hub = Hub(heartbeat_interval=None, max_connections_per_ip=3, max_connections_per_client=1)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/echo?client_id=a"):
            response = await refused(url + "/echo?client_id=a")
            assert response.status_code == 429
            assert response.headers["X-Stabilizer-Reason"] == "client_limit"
            assert "Retry-After" in response.headers
            async with client(url + "/echo?client_id=b"), client(url + "/echo?client_id=c"):
                response = await refused(url + "/echo?client_id=d")
                assert response.status_code == 429
                assert response.headers["X-Stabilizer-Reason"] == "ip_limit"
        assert rec.calls == 3
    assert hub.stats()["rejected"] == {"client_limit": 1, "ip_limit": 1}


async def test_origin_policy(server_kind: str) -> None:
    """A foreign Origin gets 403; no Origin and the same origin are admitted."""
    hub = Hub(heartbeat_interval=None)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        response = await refused(url + "/echo", origin="http://evil.example")
        assert response.status_code == 403
        assert rec.calls == 0
        same = "http://" + url.removeprefix("ws://")
        async with client(url + "/echo", origin=same) as ws:
            await ws.send("same")
            assert await asyncio.wait_for(ws.recv(), 3) == "same"
        async with client(url + "/echo") as ws:
            await ws.send("none")
            assert await asyncio.wait_for(ws.recv(), 3) == "none"
    assert rec.calls == 2
    assert hub.stats()["rejected"] == {"origin_not_allowed": 1}


async def test_allowed_origins_list(server_kind: str) -> None:
    """An explicit allowed_origins list admits those origins only."""
    hub = Hub(heartbeat_interval=None, allowed_origins=["https://app.example"])
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/echo", origin="https://app.example"):
            pass
        response = await refused(url + "/echo", origin="https://other.example")
        assert response.status_code == 403


async def test_malformed_client_id_is_400(server_kind: str) -> None:
    """A client id with characters outside the allowed set is refused with 400."""
    hub = Hub(heartbeat_interval=None)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        response = await refused(url + "/echo?client_id=%0Aadmin")
        assert response.status_code == 400
        assert b"malformed client id" in response.body
    assert rec.calls == 0
