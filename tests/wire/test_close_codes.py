"""Closes on the app's behalf, on the wire: 1011 on a crash, 1000 on return, quiet departures."""

from __future__ import annotations

import asyncio
import logging

import pytest
from structlog.testing import capture_logs
from websockets.exceptions import ConnectionClosed

from asgi_ws_stabilizer import Hub
from asgi_ws_stabilizer.aio import runner as runner_module
from asgi_ws_stabilizer.aio import sending as sending_module
from asgi_ws_stabilizer.hub import services as services_module

from ..apps import build
from ..conftest import client
from ..servers import serve
from ..timing import t
from .hostile_client import RawClient
from .test_heartbeat import wait_count


async def test_app_raises_after_accept_gives_1011(server_kind: str, flavour: str) -> None:
    """An exception after accept reaches the client as 1011 and is logged with the id."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build(flavour, hub)
    with capture_logs() as logs:
        async with serve(app, server_kind) as url, client(url + "/raise") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            assert ws.close_code == 1011
            await wait_count(hub, 0, 2)
    errors = [e for e in logs if e["event"] == "app_exception"]
    assert len(errors) == 1
    assert errors[0]["log_level"] == "error"
    assert errors[0]["connection_id"]
    assert errors[0]["error"] == "RuntimeError"
    assert hub.stats()["app_errors"] == 1


async def test_app_returns_without_close_gives_1000(server_kind: str, flavour: str) -> None:
    """A handler that returns after accept leaves the client a clean 1000."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build(flavour, hub)
    async with serve(app, server_kind) as url, client(url + "/return") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1000
        await wait_count(hub, 0, 2)
    assert hub.stats()["closes"] == {"1000": 1}


async def test_disconnect_during_receive_is_not_an_error(
    server_kind: str, flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client leaving while the app waits in receive_text() produces no error log."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build(flavour, hub)
    caplog.set_level(logging.WARNING)
    with capture_logs() as logs:
        async with serve(app, server_kind) as url:
            async with client(url + "/wait") as ws:
                assert await asyncio.wait_for(ws.recv(), 3) == "ready"
            await wait_count(hub, 0, 2)
            await asyncio.sleep(0.1)  # let the handler unwind and the server log, if it would
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    server_errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert server_errors == [], [r.getMessage() for r in server_errors]
    assert hub.stats()["app_errors"] == 0


async def test_handle_fields_reach_the_app(server_kind: str, flavour: str) -> None:
    """websocket.state.stabilizer carries ids and the hub; the client id comes from the query."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build(flavour, hub)
    async with serve(app, server_kind) as url, client(url + "/info?client_id=alice") as ws:
        info = await asyncio.wait_for(ws.recv(), 3)
        assert isinstance(info, str)
        assert '"client_id":"alice"' in info.replace(" ", "")
        assert '"hub_count":1' in info.replace(" ", "")
        assert hub.client_ids() == ["alice"]


@pytest.mark.parametrize("how", ["close_timeout", "send_timeout"])
async def test_blocked_slow_consumer_never_sees_a_server_error(
    server_kind: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stopped reading is closed 1013 by the hub (outbox overflow, or a write
    past ``send_timeout``); when it reads again it finds the data, then 1013 or the end of
    the stream, never 1011 (hypercorn's "internal error" when a handler returns without
    having handed over a close)."""
    monkeypatch.setattr(sending_module, "CLOSE_TIMEOUT", t(0.5))
    monkeypatch.setattr(runner_module, "CLOSE_TIMEOUT", t(0.5))
    monkeypatch.setattr(services_module, "CLOSE_TIMEOUT", t(0.5))
    send_timeout = t(0.5) if how == "send_timeout" else None
    queue = 64 * 1024 if how == "close_timeout" else None
    hub = Hub(heartbeat_interval=None, max_send_queue=queue, send_timeout=send_timeout)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        raw, response = await RawClient.handshake(url, b"/listen", rcvbuf=4096)
        try:
            assert response.status == 101
            await wait_count(hub, 1, t(3))
            (stuck,) = list(hub.registry)
            for _ in range(400):  # 64 KB each: the loopback buffers fill after a few MB
                await hub.broadcast(b"x" * 65536)
                await asyncio.sleep(0.002)
                if stuck.close_code is not None:
                    break
            assert stuck.close_code == 1013
            await wait_count(hub, 0, t(3))  # the handler has returned
            await asyncio.sleep(t(0.3))  # whatever the server does on its own, it has done
            ended = await raw.ended(t(10))
        finally:
            raw.close()
    assert ended in ("close 1013", "tcp closed"), ended
    print(f"\n[{server_kind} {how}] the client read the data, then: {ended}")
