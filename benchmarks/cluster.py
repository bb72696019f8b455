"""The ``cluster`` scenario: ``ours`` in several worker processes sharing one private Redis, side
by side with the same total load on one worker in memory mode.

* **fanout**: ``cluster_sockets_per_worker`` readers on each of ``cluster_workers`` workers;
  ``cluster_broadcasts`` broadcasts of 64 bytes, each started on the first worker (``POST
  /broadcast``, i.e. ``hub.broadcast``, which the Redis backend carries to every worker) and
  waited for. The memory side is one worker with as many readers in total and the same
  broadcasts. Figures: server CPU (the workers' sum) per delivered message (broadcasts x
  readers), Redis's CPU apart, and the time to last delivery.
* **latency**: ``cluster_rate`` broadcasts per second for ``cluster_seconds``, published in the
  first worker (``POST /paced``), received by ``cluster_latency_sockets`` readers on the second
  worker; the memory side publishes and receives on its one worker. Figures: delivery latency
  (receive time minus the send timestamp in the payload; one machine, one clock), p50/p99, and
  the messages received against those sent.

Every server-side process (the workers, the memory-mode worker, redis-server) is pinned to the
server core, the load generator to the other: the two sides have one core each, so the ratio
measures what the Redis path costs, not what spreading the work over cores would gain.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

from .client import WSClient, http_post
from .redis_server import RedisServer
from .scenarios import (
    HOST,
    Deliveries,
    Sizes,
    close_all,
    connect_many,
    median_of,
    percentile,
    state,
    wait_registered,
)
from .server import Server

BROADCAST_SIZE = 64
DELIVERY_TIMEOUT = 5.0
"""Seconds a broadcast may take to reach every reader before it counts as incomplete."""


def cluster_env(redis: RedisServer) -> dict[str, str]:
    """The settings every worker shares: the Redis URL, a secret and a prefix of this run's own."""
    return {
        "WS_STABILIZER_BACKEND_URL": redis.url,
        "WS_STABILIZER_SECRET_KEY": secrets.token_hex(32),
        "WS_STABILIZER_BACKEND_PREFIX": f"bench_{secrets.token_hex(6)}",
    }


async def wait_backends(servers: list[Server], timeout: float = 30.0) -> None:
    """Wait until every worker's backend reports ``connected``."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while True:
            backend = (await state(server)).get("backend")
            if isinstance(backend, dict) and backend.get("state") == "connected":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker on port {server.port}: backend never connected")
            await asyncio.sleep(0.05)


async def settle(servers: list[Server]) -> None:
    """After closing readers: wait until every worker let go of them, then a short pause."""
    for server in servers:
        await wait_registered(server, 0, 30)
    await asyncio.sleep(0.2)


def workers_cpu(servers: list[Server]) -> float:
    return sum(server.cpu() for server in servers)


async def fanout(
    servers: list[Server], per_server: int, broadcasts: int, redis: RedisServer | None
) -> dict[str, Any]:
    """Broadcasts started on ``servers[0]`` to ``per_server`` readers on every server."""
    sockets = per_server * len(servers)
    deliveries = Deliveries(sockets)
    clients: list[WSClient] = []
    for server in servers:
        clients += await connect_many(server, "/sub", per_server, deliveries.on_text)
    for server in servers:
        await wait_registered(server, per_server)
    await asyncio.sleep(0.2)
    publisher = servers[0]
    incomplete = 0
    redis_cpu = redis.cpu() if redis is not None else 0.0
    cpu = workers_cpu(servers)
    for seq in range(broadcasts):
        if not await deliveries.broadcast(publisher.port, seq, BROADCAST_SIZE, DELIVERY_TIMEOUT):
            incomplete = broadcasts - seq
            break
    cpu = workers_cpu(servers) - cpu
    if redis is not None:
        redis_cpu = redis.cpu() - redis_cpu
    await close_all(clients)
    await settle(servers)
    figures = fanout_figures(
        len(servers), sockets, broadcasts, incomplete, cpu, redis_cpu if redis is not None else None
    )
    return figures | deliveries.figures()


def fanout_figures(
    workers: int,
    sockets: int,
    broadcasts: int,
    incomplete: int,
    cpu: float,
    redis_cpu: float | None,
) -> dict[str, Any]:
    """A fan-out's figures: CPU (the workers', and Redis's apart when it ran) per delivered
    message (broadcasts x sockets) and per broadcast."""
    delivered = broadcasts * sockets
    result: dict[str, Any] = {
        "workers": workers,
        "sockets": sockets,
        "broadcasts": broadcasts,
        "incomplete_broadcasts": incomplete,
        "cpu_us_per_delivered": cpu / delivered * 1e6,
        "cpu_ms_per_broadcast": cpu / broadcasts * 1000,
    }
    if redis_cpu is not None:
        result |= {
            "redis_cpu_us_per_delivered": redis_cpu / delivered * 1e6,
            "redis_cpu_ms_per_broadcast": redis_cpu / broadcasts * 1000,
            "cpu_us_per_delivered_with_redis": (cpu + redis_cpu) / delivered * 1e6,
        }
    return result


async def latency(
    servers: list[Server],
    publisher: Server,
    readers_on: Server,
    sizes: Sizes,
    redis: RedisServer | None,
) -> dict[str, Any]:
    """A steady rate of broadcasts from ``publisher``, received on ``readers_on``."""
    n = sizes.cluster_latency_sockets
    received: list[set[int]] = [set() for _ in range(n)]
    delays: list[float] = []
    goal: list[int] = []
    """How many were sent, once the publisher said so."""
    complete = asyncio.Event()

    def check() -> None:
        if goal and all(len(got) >= goal[0] for got in received):
            complete.set()

    clients: list[WSClient] = []
    for i in range(n):

        def on_text(text: str, at: float, got: set[int] = received[i]) -> None:
            seq_text, sent_text, _ = text.split(" ", 2)
            got.add(int(seq_text))
            delays.append(at - float(sent_text))
            if goal:
                check()

        clients.append(await WSClient.connect(HOST, readers_on.port, "/sub", on_text))
    await wait_registered(readers_on, n)
    await asyncio.sleep(0.2)
    redis_cpu = redis.cpu() if redis is not None else 0.0
    each = [server.cpu() for server in servers]
    wall = time.perf_counter()
    answer = json.loads(
        await http_post(
            HOST,
            publisher.port,
            f"/paced?rate={sizes.cluster_rate}&seconds={sizes.cluster_seconds}"
            f"&size={BROADCAST_SIZE}",
        )
    )
    sent = int(answer["sent"])
    goal.append(sent)
    check()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(complete.wait(), DELIVERY_TIMEOUT)
    wall = time.perf_counter() - wall
    each = [server.cpu() - before for server, before in zip(servers, each, strict=True)]
    if redis is not None:
        redis_cpu = redis.cpu() - redis_cpu
    await close_all(clients)
    await settle(servers)
    cpu = sum(each)
    result: dict[str, Any] = {
        "rate_per_s": sizes.cluster_rate,
        "publish_seconds": answer["seconds"],
        "reader_sockets": n,
        "sent": sent,
        "received": min(len(got) for got in received),
        "missing": sent * n - sum(len(got) for got in received),
        "duplicates": len(delays) - sum(len(got) for got in received),
        "deferred": answer["deferred"],
        "cpu_percent_of_core": cpu / wall * 100,
    }
    if len(servers) > 1:
        roles = [
            "publisher" if s is publisher else "readers" if s is readers_on else "other"
            for s in servers
        ]
        result["cpu_percent_by_worker"] = {
            f"{role}{i}" if roles.count(role) > 1 else role: used / wall * 100
            for i, (role, used) in enumerate(zip(roles, each, strict=True))
        }
    if redis is not None:
        result["redis_cpu_percent_of_core"] = redis_cpu / wall * 100
    if delays:
        result |= {
            "p50_ms": percentile(delays, 0.5) * 1000,
            "p99_ms": percentile(delays, 0.99) * 1000,
            "max_ms": max(delays) * 1000,
        }
    return result


async def cluster(redis_executable: str, sizes: Sizes) -> dict[str, dict[str, Any]]:
    """The whole scenario: ``{"memory": figures, "cluster": figures}``."""
    per_worker = sizes.cluster_sockets_per_worker
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer(redis_executable))
        env = cluster_env(redis)
        workers = [stack.enter_context(Server("ours", env)) for _ in range(sizes.cluster_workers)]
        single = stack.enter_context(Server("ours"))
        await wait_backends(workers)
        runs: dict[str, list[dict[str, Any]]] = {"memory": [], "cluster": []}
        for repeat in range(sizes.repeats):
            for mode in ("memory", "cluster") if repeat % 2 == 0 else ("cluster", "memory"):
                if mode == "memory":
                    figures = await fanout(
                        [single], per_worker * len(workers), sizes.cluster_broadcasts, None
                    )
                else:
                    figures = await fanout(workers, per_worker, sizes.cluster_broadcasts, redis)
                runs[mode].append(figures)
        memory_latency = await latency([single], single, single, sizes, None)
        cluster_latency = await latency(workers, workers[0], workers[1], sizes, redis)
        backends = [(await state(worker))["backend"] for worker in workers]
    memory = median_of(runs["memory"])
    clustered = median_of(runs["cluster"])
    clustered["backend_gaps"] = sum(int(b["gaps"]) for b in backends)
    clustered["backend_dropped"] = sum(int(b["dropped"]) for b in backends)
    return {
        "memory": {**memory, "latency": memory_latency},
        "cluster": {**clustered, "latency": cluster_latency},
    }
