"""The scenarios. Each drives one running subject and returns its figures.

Server CPU is read from /proc before and after the measured work (the server process is pinned to
its own core), so figures are CPU seconds per unit of work, steadier than wall time on a shared
machine; wall times and percentiles are reported too.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Any

from .client import WSClient, http_get_json, http_post
from .proxy import LoopbackProxy
from .server import Server

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    echo_clients: int = 20
    echo_round_trips: int = 1000
    fanout_sockets: tuple[int, ...] = (1000, 5000)
    fanout_broadcasts: int = 20
    slow_sockets: int = 1000
    slow_broadcasts: int = 20
    idle_sockets: int = 5000
    idle_seconds: float = 30.0
    churn_cycles: int = 5000
    churn_warmup: int = 500
    dead_timeout: float = 60.0
    cluster_workers: int = 3
    cluster_sockets_per_worker: int = 1000
    cluster_broadcasts: int = 20
    cluster_rate: float = 1000.0
    cluster_seconds: float = 5.0
    cluster_latency_sockets: int = 10
    repeats: int = 5


FULL = Sizes()
INSTRUCTIONS = Sizes(
    echo_clients=1,
    echo_round_trips=2000,
    fanout_sockets=(1000, 5000),
    fanout_broadcasts=5,
    churn_cycles=3000,
    churn_warmup=200,
    repeats=2,
)
"""``--meter instructions`` (benchmarks/instructions.py): the server runs 20-50 times slower under
callgrind, and a count does not need many repeats to settle. One echo client: its round trips
follow one another, so each costs the same work whatever the timing. Churn counts 3,000 cycles:
the garbage collector's full pass over the whole heap (some 15 M instructions for a server with
this middleware, 10 M bare) comes about once per 3,000 connections here, so a window of a few
hundred cycles either catches one and overstates the cost per cycle by up to 50 k, or not."""
SLOWDOWN = 1.0
"""How much slower the servers run than natively (``instructions.SLOWDOWN`` under callgrind):
every wait of the scenarios is stretched by it."""
QUICK = Sizes(
    echo_round_trips=500,
    fanout_sockets=(1000,),
    fanout_broadcasts=10,
    slow_broadcasts=10,
    idle_sockets=1000,
    idle_seconds=10.0,
    churn_cycles=1000,
    churn_warmup=200,
    cluster_sockets_per_worker=300,
    cluster_broadcasts=10,
    cluster_seconds=2.0,
    repeats=3,
)
SMOKE = Sizes(
    echo_clients=2,
    echo_round_trips=10,
    fanout_sockets=(20,),
    fanout_broadcasts=2,
    slow_sockets=10,
    slow_broadcasts=2,
    idle_sockets=10,
    idle_seconds=0.5,
    churn_cycles=20,
    churn_warmup=5,
    dead_timeout=15.0,
    cluster_sockets_per_worker=5,
    cluster_broadcasts=2,
    cluster_seconds=0.5,
    cluster_latency_sockets=2,
    repeats=1,
)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median of numeric figures over repeats (the rest from the first run)."""
    merged = dict(runs[0])
    for key, value in runs[0].items():
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if isinstance(value, int | float) and len(values) == len(runs):
            merged[key] = statistics.median(values)
    merged["repeats"] = len(runs)
    return merged


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def state(server: Server) -> dict[str, Any]:
    return await http_get_json(HOST, server.port, "/_bench/state")


async def wait_registered(server: Server, count: int, timeout: float = 60.0) -> float:
    """Wait until the subject counts ``count`` sockets; returns the seconds it took."""
    start = time.monotonic()
    while True:
        if (await state(server))["registered"] == count:
            return time.monotonic() - start
        if time.monotonic() - start > timeout * SLOWDOWN:
            raise TimeoutError(f"{server.subject}: never {count} registered sockets")
        await asyncio.sleep(0.05)


async def connect_many(
    server: Server, path: str, n: int, on_text: Any = None, concurrency: int = 50
) -> list[WSClient]:
    """Open ``n`` sockets, ``concurrency`` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> WSClient:
        async with gate:
            return await WSClient.connect(HOST, server.port, path, on_text, 10 * SLOWDOWN)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def close_all(clients: list[WSClient]) -> None:
    await asyncio.gather(*(c.close(2.0 * SLOWDOWN) for c in clients), return_exceptions=True)


# -- echo ---------------------------------------------------------------------------------------


async def echo(server: Server, sizes: Sizes) -> dict[str, Any]:
    """Clients doing sequential round trips: server CPU per round trip, latency percentiles."""
    waiters: dict[int, asyncio.Future[str]] = {}
    clients: list[WSClient] = []
    for i in range(sizes.echo_clients):

        def on_text(text: str, at: float, i: int = i) -> None:
            waiter = waiters.get(i)
            if waiter is not None and not waiter.done():
                waiter.set_result(text)

        clients.append(await WSClient.connect(HOST, server.port, "/echo", on_text, 10 * SLOWDOWN))
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def run(i: int) -> None:
        client = clients[i]
        for n in range(sizes.echo_round_trips):
            waiters[i] = loop.create_future()
            sent = time.perf_counter()
            client.send_text(f"{i}:{n}:" + "e" * 32)
            await asyncio.wait_for(waiters[i], 10 * SLOWDOWN)
            latencies.append(time.perf_counter() - sent)

    await run(0)  # warm-up round trips, not measured
    latencies.clear()
    cpu = server.cpu()
    wall = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(len(clients))))
    wall = time.perf_counter() - wall
    cpu = server.cpu() - cpu
    await close_all(clients)
    trips = len(latencies)
    return {
        "round_trips": trips,
        "cpu_us_per_round_trip": cpu / trips * 1e6,
        "wall_s": wall,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


# -- fanout / slow --------------------------------------------------------------------------------


def stalled_reader(port: int) -> socket.socket:
    """A raw socket on ``/flood`` that completes the handshake and never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /flood HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock


class Deliveries:
    """Each broadcast's delivery latencies (receive time minus the server's send timestamp)
    over ``readers`` sockets, and the wait until every reader has it."""

    def __init__(self, readers: int) -> None:
        self.readers = readers
        self.seen: dict[int, list[float]] = {}
        self.done: dict[int, asyncio.Event] = {}
        self.last: list[float] = []
        """Per complete broadcast: its latest delivery."""
        self.every: list[float] = []
        """Every delivery of the complete broadcasts."""

    def on_text(self, text: str, at: float) -> None:
        """A reader got ``"<seq> <sent_at> ..."`` at ``at``."""
        seq_text, sent_text, _ = text.split(" ", 2)
        seq = int(seq_text)
        arrivals = self.seen.setdefault(seq, [])
        arrivals.append(at - float(sent_text))
        if len(arrivals) == self.readers and seq in self.done:
            self.done[seq].set()

    async def broadcast(self, port: int, seq: int, size: int, timeout: float) -> bool:
        """Start broadcast ``seq`` on the server at ``port``; whether every reader got it within
        ``timeout`` seconds."""
        self.done[seq] = asyncio.Event()
        await http_post(HOST, port, f"/broadcast?seq={seq}&size={size}")
        try:
            await asyncio.wait_for(self.done[seq].wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self.last.append(max(self.seen[seq]))
        self.every.extend(self.seen[seq])
        return True

    def figures(self) -> dict[str, float]:
        """Time to last delivery (median over broadcasts) and every delivery's p50/p95, in ms;
        empty when no broadcast was complete."""
        if not self.last:
            return {}
        return {
            "last_delivery_ms": statistics.median(self.last) * 1000,
            "p50_delivery_ms": percentile(self.every, 0.5) * 1000,
            "p95_delivery_ms": percentile(self.every, 0.95) * 1000,
        }


async def fanout(
    server: Server, sockets: int, broadcasts: int, *, size: int = 64, stalled: bool = False
) -> dict[str, Any]:
    """Repeated broadcasts to ``sockets`` readers: server CPU per broadcast, time to last
    delivery (from the server's send timestamp), and every reader's delivery latency."""
    deliveries = Deliveries(sockets)
    clients = await connect_many(server, "/sub", sockets, deliveries.on_text)
    blocker = None
    if stalled:
        blocker = await asyncio.to_thread(stalled_reader, server.port)
        await asyncio.sleep(1.0)  # let the flood fill every buffer on the way
    await wait_registered(server, sockets + (1 if stalled else 0))
    await asyncio.sleep(0.2)
    incomplete = 0
    cpu = server.cpu()
    for seq in range(broadcasts):
        if not await deliveries.broadcast(server.port, seq, size, 5 * SLOWDOWN):
            # Not delivered to everyone in 5 s: the subject is blocked (bare's plain loop
            # waits on the stalled socket forever), and so will every later broadcast be.
            incomplete = broadcasts - seq
            break
    cpu = server.cpu() - cpu
    if blocker is not None:
        blocker.close()
    await close_all(clients)
    result: dict[str, Any] = {
        "sockets": sockets,
        "broadcasts": broadcasts,
        "incomplete_broadcasts": incomplete,
        "cpu_ms_per_broadcast": cpu / broadcasts * 1000,
    }
    return result | deliveries.figures()


# -- idle -----------------------------------------------------------------------------------------


async def idle(server: Server, sizes: Sizes) -> dict[str, Any]:
    """Idle sockets at the default heartbeat: server CPU share and memory per connection."""
    warm = await connect_many(server, "/sub", 20)
    await close_all(warm)
    await wait_registered(server, 0)
    await asyncio.sleep(0.5)
    rss = server.rss()
    clients = await connect_many(server, "/sub", sizes.idle_sockets)
    await wait_registered(server, sizes.idle_sockets)
    await asyncio.sleep(2.0)
    per_connection = (server.rss() - rss) / sizes.idle_sockets
    cpu = server.cpu()
    await asyncio.sleep(sizes.idle_seconds)
    cpu = server.cpu() - cpu
    alive = sum(1 for c in clients if not c.closed.done())
    pongs = sum(c.pongs for c in clients)
    await close_all(clients)
    return {
        "sockets": sizes.idle_sockets,
        "seconds": sizes.idle_seconds,
        "cpu_percent_of_core": cpu / sizes.idle_seconds * 100,
        "memory_bytes_per_connection": per_connection,
        "still_open": alive,
        "heartbeats_answered": pongs,
    }


# -- churn ----------------------------------------------------------------------------------------


async def churn(server: Server, sizes: Sizes) -> dict[str, Any]:
    """Connect/close cycles: what is left in the registry, in tasks and in memory."""

    async def cycles(n: int) -> None:
        gate = asyncio.Semaphore(10)

        async def one() -> None:
            async with gate:
                client = await WSClient.connect(HOST, server.port, "/sub", None, 10 * SLOWDOWN)
                await client.close(2.0 * SLOWDOWN)

        await asyncio.gather(*(one() for _ in range(n)))

    await cycles(sizes.churn_warmup)
    await wait_registered(server, 0)
    await asyncio.sleep(0.5)
    before = await state(server)
    rss = server.rss()
    cpu = server.cpu()
    wall = time.perf_counter()
    await cycles(sizes.churn_cycles)
    wall = time.perf_counter() - wall
    await wait_registered(server, 0, 30)
    cpu = server.cpu() - cpu
    await asyncio.sleep(1.0)
    after = await state(server)
    return {
        "cycles": sizes.churn_cycles,
        "registered_after": after["registered"],
        "tasks_left": int(after["tasks"]) - int(before["tasks"]),
        "memory_growth_bytes": server.rss() - rss,
        "cpu_us_per_cycle": cpu / sizes.churn_cycles * 1e6,
        "wall_s": wall,
    }


# -- dead -----------------------------------------------------------------------------------------


async def dead(server: Server, sizes: Sizes) -> dict[str, Any]:
    """A peer that vanishes without a close (a proxy stops forwarding): time until the
    subject's registry lets go of it."""
    proxy = LoopbackProxy(server.port)
    await proxy.start()
    try:
        client = await WSClient.connect(HOST, proxy.port, "/sub")
        await wait_registered(server, 1)
        proxy.blackhole()
        start = time.monotonic()
        detected = None
        while time.monotonic() - start < sizes.dead_timeout:
            if (await state(server))["registered"] == 0:
                detected = time.monotonic() - start
                break
            await asyncio.sleep(0.05)
        client.abort()
    finally:
        await proxy.close()
    return {"detected_s": detected, "gave_up_after_s": sizes.dead_timeout}
