"""Size limit and slow readers on the wire."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import StalledReader, serve
from ..timing import t
from .test_heartbeat import wait_count


async def test_oversized_message_closes_1009_others_unaffected(server_kind: str) -> None:
    """A message over max_message_size closes that socket with 1009; another keeps working."""
    hub = Hub(heartbeat_interval=None, max_message_size=1000)
    app, rec = build("starlette", hub)
    async with (
        serve(app, server_kind) as url,
        client(url + "/echo") as good,
        client(url + "/echo") as bad,
    ):
        await bad.send("x" * 1001)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(bad.recv(), 3)
        assert bad.close_code == 1009
        assert "exceeds limit of 1000 bytes" in (bad.close_reason or "")
        await good.send("y" * 1000)  # exactly at the limit is fine
        assert await asyncio.wait_for(good.recv(), 3) == "y" * 1000
        await wait_count(hub, 1, 2)
    assert "x" * 1001 not in rec.received
    assert hub.stats()["oversized_messages"] == 1


async def test_multibyte_text_counted_in_utf8_bytes(server_kind: str) -> None:
    """The size limit counts UTF-8 bytes: 400 three-byte characters exceed 1000 bytes."""
    hub = Hub(heartbeat_interval=None, max_message_size=1000)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/echo") as ws:
        await ws.send("€" * 334)  # 1002 bytes in 334 characters
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1009


async def test_stalled_reader_does_not_delay_others(server_kind: str) -> None:
    """A socket whose peer stopped reading does not delay pings or messages to another."""
    interval, timeout = t(0.2), t(0.2)
    hub = Hub(heartbeat_interval=interval, heartbeat_timeout=timeout)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        stalled = await asyncio.to_thread(StalledReader, url, "/flood")
        try:
            await asyncio.sleep(t(0.3))  # let the flood fill every buffer on the way
            (flooded,) = list(hub.registry)
            stuck_at = flooded.traffic.bytes_out
            async with client(url + "/echo") as ws:
                loop = asyncio.get_running_loop()
                start = loop.time()
                last_ping = start
                worst_gap = 0.0
                echoes = 0
                while loop.time() - start < 10 * interval:
                    sent_at = loop.time()
                    await ws.send(f"m{echoes}")
                    while True:
                        frame = await asyncio.wait_for(ws.recv(), interval + timeout)
                        if frame == "ping":
                            now = loop.time()
                            worst_gap = max(worst_gap, now - last_ping)
                            last_ping = now
                            await ws.send("pong")
                            continue
                        assert frame == f"m{echoes}"
                        assert loop.time() - sent_at < interval
                        echoes += 1
                        break
                    await asyncio.sleep(interval / 4)
                assert worst_gap < 2 * interval + timeout
                assert echoes >= 20
            # The flood really was stuck the whole time (write backpressure, not a fast reader).
            assert flooded.traffic.bytes_out - stuck_at <= 4 * 65536
        finally:
            stalled.close()
