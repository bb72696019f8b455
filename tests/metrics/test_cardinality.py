"""Acceptance: clients cannot grow the metrics. A thousand clients, each with its own close code,
client id, path and origin, leave the set of series of a real uvicorn server's ``/metrics``
exactly as it was; their closes are all counted, under ``code="other"``."""

from __future__ import annotations

import asyncio
import re

import httpx
from websockets.asyncio.client import connect

from ..cluster.workers import Worker
from ..timing import t
from .served import uvicorn_workers

CLIENTS = 1000
SERIES = re.compile(r"^(asgi_ws_[a-z_]+)(\{[^}]*\})? ", re.MULTILINE)


async def scrape(served: Worker) -> str:
    async with httpx.AsyncClient(trust_env=False, timeout=t(10)) as http:
        answer = await http.get(served.http_url + "/metrics")
    assert answer.status_code == 200, answer.text
    return answer.text


def series(text: str) -> set[str]:
    """Every series of ours: name and labels, without the value."""
    return {name + (labels or "") for name, labels in SERIES.findall(text)}


def sample(text: str, series_name: str) -> float:
    found = re.search(rf"^{re.escape(series_name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def one(served: Worker, i: int, slots: asyncio.Semaphore) -> None:
    async with slots:
        url = f"ws://127.0.0.1:{served.port}/ws/path-{i}/x{i}?client_id=client-{i}"
        socket = await asyncio.wait_for(
            connect(url, origin=f"http://origin-{i}.test", open_timeout=t(10)),  # type: ignore[arg-type]
            t(15),
        )
        assert '"pid"' in str(await asyncio.wait_for(socket.recv(), t(10)))
        await socket.send(f"hello {i}")
        assert await asyncio.wait_for(socket.recv(), t(10)) == f"hello {i}"
        await socket.close(3000 + i)  # 3000-3999: codes a client may send


async def test_a_thousand_codes_ids_paths_and_origins_add_no_series() -> None:
    async with uvicorn_workers(1, {"WS_STABILIZER_ALLOWED_ORIGINS": "*"}, multiprocess=False) as s:
        before = await scrape(s)
        slots = asyncio.Semaphore(50)
        await asyncio.gather(*(one(s, i, slots) for i in range(CLIENTS)))
        closed = 'asgi_ws_connections_closed_total{closed_by="client",code="other"}'
        for _ in range(100):  # the close is counted once the handler has ended
            after = await scrape(s)
            if sample(after, closed) >= CLIENTS:
                break
            await asyncio.sleep(0.1)
    assert sample(before, closed) == 0
    assert sample(after, closed) == CLIENTS
    assert sample(after, "asgi_ws_connections_accepted_total") == CLIENTS
    assert series(after) == series(before)
    assert len(series(after)) < 400
    for i in (0, 1, 999):
        assert f"client-{i}" not in after
        assert f"path-{i}" not in after
        assert f"origin-{i}" not in after
        assert f'"{3000 + i}"' not in after
