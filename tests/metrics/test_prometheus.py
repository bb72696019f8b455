"""Acceptance: a real Prometheus server scrapes a real ``uvicorn --workers 3`` app in multiprocess
mode while 300 clients connect, talk, get refused, time out and close with several codes; what
PromQL answers equals what the clients did, also after a worker is SIGKILLed and replaced.

Every client is a real ``websockets`` client on loopback; the workers are uvicorn's own
(``--workers 3``: one socket, the kernel picks the worker), so a scrape reaches any one of them
and must answer for all. Prometheus scrapes every second and the workers copy their per-message
counts every 2 s, so each check is retried until it holds, within a bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..cluster.waits import eventually
from ..cluster.workers import Worker
from ..timing import t
from .prometheus_server import PrometheusServer, require_prometheus
from .served import uvicorn_workers

ALLOWED = "http://ok.test"
HEARTBEAT = max(1, round(t(1)))
"""``heartbeat_interval`` and ``heartbeat_timeout`` (whole seconds): a silent opted-in client
is closed 4408 after about twice this."""


@dataclass
class Tally:
    """What the clients did: data messages each way, and the closes each saw."""

    sent: int = 0
    received: int = 0
    pids: Counter[int] = field(default_factory=Counter)


@pytest.fixture
async def workers() -> AsyncIterator[Worker]:
    """``uvicorn --workers 3`` with metrics on, in multiprocess mode."""
    env = {
        "WS_STABILIZER_ALLOWED_ORIGINS": ALLOWED,
        "WS_STABILIZER_HEARTBEAT_INTERVAL": str(HEARTBEAT),
        "WS_STABILIZER_HEARTBEAT_TIMEOUT": str(HEARTBEAT),
    }
    async with uvicorn_workers(3, env, multiprocess=True) as served:
        yield served


@pytest.fixture
async def prometheus(workers: Worker) -> AsyncIterator[PrometheusServer]:
    server = PrometheusServer(require_prometheus(), workers.port)
    server.start()
    try:
        await server.ready()
        yield server
    finally:
        await server.close()


async def hello(socket: ClientConnection, tally: Tally) -> int:
    """The app's first message: the pid of the worker that took the socket."""
    for _ in range(10):
        frame = await asyncio.wait_for(socket.recv(), t(10))
        if isinstance(frame, str) and frame.startswith('{"pid"'):
            tally.received += 1
            pid = int(json.loads(frame)["pid"])
            tally.pids[pid] += 1
            return pid
    raise AssertionError("no hello from the app")


async def open_client(url: str, tally: Tally, **kwargs: object) -> tuple[ClientConnection, int]:
    socket = await asyncio.wait_for(connect(url, open_timeout=t(10), **kwargs), t(15))  # type: ignore[arg-type]
    return socket, await hello(socket, tally)


async def talk(socket: ClientConnection, tally: Tally, n: int) -> None:
    for i in range(n):
        await socket.send(f"m{i}")
        tally.sent += 1
        assert await asyncio.wait_for(socket.recv(), t(10)) == f"m{i}"
        tally.received += 1


async def closed_code(socket: ClientConnection) -> int | None:
    """Wait (bounded) for the server to close ``socket``; the code it sent."""
    await asyncio.wait_for(socket.wait_closed(), t(15))
    return socket.close_code


async def normal(url: str, tally: Tally, i: int, code: int) -> None:
    """Talk a little, then close with ``code``."""
    socket, _ = await open_client(f"{url}?client_id=c{i}", tally)
    await talk(socket, tally, i % 3 + 1)
    await socket.close(code)


async def asks_close(url: str, tally: Tally) -> None:
    socket, _ = await open_client(url, tally)
    await socket.send("close 4001")
    tally.sent += 1
    assert await closed_code(socket) == 4001


async def asks_raise(url: str, tally: Tally) -> None:
    socket, _ = await open_client(url, tally)
    await socket.send("raise")
    tally.sent += 1
    assert await closed_code(socket) == 1011


async def silent(url: str, tally: Tally) -> None:
    """Opts in to the heartbeat and never answers it: closed 4408."""
    socket, _ = await open_client(f"{url}?_stabilizer=1", tally)
    assert await read_until_closed(socket) == 4408


async def read_until_closed(socket: ClientConnection) -> int | None:
    """Read (and ignore: the session frame, pings) until the server closes; its code."""
    for _ in range(1000):
        try:
            await asyncio.wait_for(socket.recv(), t(15))
        except ConnectionClosed:
            break
    return socket.close_code


async def refused(url: str, *, origin: str | None = None, query: str = "") -> int:
    kwargs = {"origin": origin} if origin else {}
    with pytest.raises(InvalidStatus) as info:
        await asyncio.wait_for(connect(url + query, open_timeout=t(10), **kwargs), t(15))  # type: ignore[arg-type]
    return info.value.response.status_code


async def bounded(jobs: list[Callable[[], Awaitable[object]]], at_once: int = 50) -> None:
    """Run ``jobs``, at most ``at_once`` at a time."""
    slots = asyncio.Semaphore(at_once)

    async def one(job: Callable[[], Awaitable[object]]) -> None:
        async with slots:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def matches(prometheus: PrometheusServer, expected: dict[str, object]) -> None:
    """Retry until every PromQL answer equals the expected one (or fail with the difference)."""

    async def check() -> None:
        seen = await observed(prometheus)
        assert seen == expected

    await eventually(check, within=t(40), interval=0.5)


async def observed(prometheus: PrometheusServer) -> dict[str, object]:
    return {
        "open": await prometheus.scalar("sum(asgi_ws_connections)"),
        "accepted": await prometheus.scalar("sum(asgi_ws_connections_accepted_total)"),
        "rejected": await prometheus.by(
            "sum by (reason) (asgi_ws_connections_rejected_total)", "reason"
        ),
        "closed": await prometheus.by(
            "sum by (code, closed_by) (asgi_ws_connections_closed_total)", "code", "closed_by"
        ),
        "durations": await prometheus.scalar("sum(asgi_ws_connection_duration_seconds_count)"),
        "messages": await prometheus.by("sum by (direction) (asgi_ws_messages_total)", "direction"),
        "timeouts": await prometheus.scalar("sum(asgi_ws_heartbeat_timeouts_total)"),
        "app_errors": await prometheus.scalar("sum(asgi_ws_app_errors_total)"),
        "admitting": await prometheus.scalar("sum(asgi_ws_admitting)"),
    }


async def test_prometheus_sees_what_300_clients_did_across_workers_and_a_kill(
    workers: Worker, prometheus: PrometheusServer
) -> None:
    url, tally = workers.ws_url + "/ws", Tally()

    # Phase 1: 270 clients, every way a connection can go but a crash.
    keep: list[tuple[ClientConnection, int]] = []

    async def stays(i: int) -> None:
        socket, pid = await open_client(f"{url}?client_id=g{i}", tally)
        await talk(socket, tally, 1)
        keep.append((socket, pid))

    jobs: list[Callable[[], Awaitable[object]]] = []
    jobs += [partial(normal, url, tally, i, 1000) for i in range(100)]
    jobs += [partial(normal, url, tally, 100 + i, 3000 + 37 * i) for i in range(50)]
    jobs += [partial(asks_raise, url, tally) for _ in range(20)]
    jobs += [partial(asks_close, url, tally) for _ in range(20)]
    jobs += [partial(silent, url, tally) for _ in range(20)]
    jobs += [partial(refused, url, origin="http://evil.test") for _ in range(20)]
    jobs += [partial(refused, url, query="?client_id=not%20an%20id!") for _ in range(10)]
    jobs += [partial(stays, i) for i in range(30)]
    await bounded(jobs)
    assert len(tally.pids) >= 2, f"uvicorn gave every socket to one worker: {tally.pids}"

    closed = {
        ("1000", "client"): 100.0,
        ("other", "client"): 50.0,
        ("1011", "middleware"): 20.0,
        ("other", "app"): 20.0,
        ("4408", "middleware"): 20.0,
    }
    expected: dict[str, object] = {
        "open": 30.0,
        "accepted": 240.0,
        "rejected": {("origin_not_allowed",): 20.0, ("bad_client_id",): 10.0},
        "closed": closed,
        "durations": 210.0,
        "messages": {("in",): float(tally.sent), ("out",): float(tally.received)},
        "timeouts": 20.0,
        "app_errors": 20.0,
        "admitting": 3.0,
    }
    await matches(prometheus, expected)

    # Phase 2: SIGKILL the worker holding most of the open sockets; uvicorn starts another.
    by_worker = Counter(pid for _, pid in keep)
    victim, lost = by_worker.most_common(1)[0]
    os.kill(victim, signal.SIGKILL)
    for socket, pid in keep:
        if pid == victim:
            await closed_code(socket)  # the client sees the connection drop (1006)
    keep = [(s, p) for s, p in keep if p != victim]
    # Its live gauge leaves the sum (next start-up or scrape); its counters stay in the totals.
    expected["open"] = 30.0 - lost
    await matches(prometheus, expected)

    # Phase 3: 30 more clients, some on the new worker, then everyone leaves.
    await bounded([partial(normal, url, tally, 200 + i, 1000) for i in range(30)])
    for socket, _ in keep:
        await socket.close(1000)
    closed[("1000", "client")] += 30 + len(keep)
    expected.update(
        {
            "open": 0.0,
            "accepted": 270.0,
            "durations": 210.0 + 30 + len(keep),
            "messages": {("in",): float(tally.sent), ("out",): float(tally.received)},
        }
    )
    await matches(prometheus, expected)
    assert workers.process.poll() is None, workers.output()[-3000:]
