"""Connect/close churn leaves nothing behind."""

from __future__ import annotations

import asyncio

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import serve
from .test_heartbeat import wait_count

CYCLES = 1000


def our_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("asgi_ws_stabilizer") and not task.done()
    ]


async def test_thousand_cycles_leave_nothing(server_kind: str) -> None:
    """1,000 connect/close cycles leave the registry empty and no tasks of ours behind."""
    hub = Hub(heartbeat_interval=0.5, heartbeat_timeout=0.5, heartbeat_clients="all")
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        for i in range(CYCLES):
            async with client(url + f"/echo?client_id=c{i % 7}") as ws:
                if i % 2:
                    await ws.send("x")
                    await asyncio.wait_for(ws.recv(), 3)
        await wait_count(hub, 0, 3)
        for _ in range(100):  # handlers finish shortly after their client's close
            if not our_tasks():
                break
            await asyncio.sleep(0.02)
        assert our_tasks() == []
        assert hub.client_ids() == []
        assert hub.registry.count_ip("127.0.0.1") == 0
        assert hub.running
        assert hub.services.watched == 0
    stats = hub.stats()
    assert stats["accepted"] == CYCLES
    assert sum(stats["closes"].values()) == CYCLES
    assert stats["messages_in"] == CYCLES // 2
    assert rec.calls == CYCLES
