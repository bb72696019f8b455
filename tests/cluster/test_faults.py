"""Redis faults under load: killed connections, a frozen or restarted Redis, a full buffer,
and workers killed over and over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..timing import t
from .conftest import PREFIX, PRESENCE_TTL, StartCluster
from .listeners import Listener, close_all, listen, listen_all
from .redis_server import RedisServer
from .waits import eventually
from .workers import Worker


def numbers(listener: Listener) -> list[int]:
    """The burst numbers a listener got (frames ``"i"`` or ``"i xxx..."``), in arrival order."""
    return [int(frame.split()[0]) for frame in listener.frames if frame.split()[0].isdigit()]


async def ended(listeners: list[Listener], within: float) -> None:
    """Wait until each listener's last frame is ``end``."""

    async def check() -> None:
        waiting = [x for x in listeners if x.frames[-1:] != ["end"]]
        assert not waiting, f"{len(waiting)} sockets wait for the end, e.g. {waiting[0]!r}"

    await eventually(check, within, interval=0.1)


@contextlib.asynccontextmanager
async def paused(redis_server: RedisServer) -> AsyncIterator[None]:
    """Redis under SIGSTOP inside the block, SIGCONT after it (also on failure)."""
    redis_server.pause()
    try:
        yield
    finally:
        redis_server.resume()


async def test_killed_connections_and_a_frozen_redis_lose_and_repeat_nothing(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """CLIENT KILL of the backend's connections, then Redis frozen (SIGSTOP) for 3 s, while
    2,000 numbered messages flow: every socket gets all of its messages, in order, once; and
    the heartbeat goes on meanwhile."""
    beat = {
        "WS_STABILIZER_HEARTBEAT_CLIENTS": "all",
        "WS_STABILIZER_HEARTBEAT_INTERVAL": "0.5",
        "WS_STABILIZER_HEARTBEAT_TIMEOUT": "5",
    }
    c = await cluster(3, beat)
    n = 2000
    specs = [(w, f"f{w.name}-{k}", ["g"] if k % 2 else []) for w in c.workers for k in range(3)]
    listeners = await listen_all(specs)
    # About 4 s of traffic: 10 messages, then 20 ms of quiet.
    await c.burst(c.workers[0], n=n, mix_group="g", every=10, pause=0.02, background=True)
    await asyncio.sleep(t(0.8))
    killed = await asyncio.to_thread(redis_server.kill_clients)
    assert killed >= 3, "every worker should have had a connection to kill"
    await asyncio.sleep(t(0.5))
    assert not (await c.burst_status(c.workers[0]))["done"], "the burst ended before the faults"
    async with paused(redis_server):
        await asyncio.sleep(1.5)
        before = [(await c.stats(w))["pings_sent"] for w in c.workers]
        await asyncio.sleep(1.5)
        during = [(await c.stats(w))["pings_sent"] for w in c.workers]
    # Redis frozen, every worker went on pinging its 3 sockets (each every 0.5 s after its pong).
    assert all(b + 3 <= d for b, d in zip(before, during, strict=True)), (before, during)
    status = await c.burst_done(c.workers[0], t(20))
    assert status["errors"] == []
    assert status["sent"] == n
    await c.broadcast(c.workers[0], "end")
    await ended(listeners, t(20))
    for x in listeners:
        want = list(range(n)) if "g" in x.groups else list(range(0, n, 2))
        assert numbers(x) == want, (x, len(x.frames))
    for worker in c.workers:
        backend = await c.backend(worker)
        assert backend["state"] == "connected", (worker.name, backend)
        assert backend["dropped"] == 0, (worker.name, backend)
        assert (await c.stats(worker))["heartbeat_timeouts"] == 0, worker.name


async def test_publishes_past_the_outage_buffer_are_dropped_and_counted(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """With a 2,000-byte buffer and Redis down, 100 publishes of 100 B: every socket gets the
    newest of them once Redis is back, and delivered + dropped == published."""
    c = await cluster(3, {"WS_STABILIZER_BACKEND_BUFFER_SIZE": "2000"})
    n = 100
    listeners = await listen_all([(w, f"b{w.name}-{k}", []) for w in c.workers for k in range(2)])
    publisher = c.workers[0]
    redis_server.stop()

    async def reconnecting() -> None:
        for worker in c.workers:
            backend = await c.backend(worker)
            assert backend["state"] == "reconnecting", (worker.name, backend)

    await eventually(reconnecting, t(5), interval=0.05)
    burst = await c.burst(publisher, n=n, pad=100)
    assert burst["errors"] == []
    held = await c.backend(publisher)
    assert 0 < held["buffered"] <= 2000, held
    assert 0 < held["dropped"] < n, held

    await asyncio.to_thread(redis_server.start)

    async def flushed() -> None:
        backend = await c.backend(publisher)
        assert (backend["state"], backend["buffered"]) == ("connected", 0), backend

    await eventually(flushed, t(5 + 1), interval=0.05)
    # Only now: an "end" published into the full buffer would push out one more message.
    await c.broadcast(publisher, "end")
    await ended(listeners, t(3))
    dropped = int((await c.backend(publisher))["dropped"])
    assert dropped == held["dropped"]
    for x in listeners:
        assert numbers(x) == list(range(dropped, n)), (x, len(x.frames))
        assert len(numbers(x)) + dropped == n


async def test_delivery_resumes_by_itself_after_a_redis_restart(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """Redis stopped for 3 s and started again on the same port: within the 5 s backoff cap
    + 1 s, messages from one process reach every process again, each once and in order."""
    c = await cluster(3)
    listeners = await listen_all([(w, f"r{w.name}-{k}", []) for w in c.workers for k in range(2)])
    sender = c.workers[1]
    await c.broadcast(sender, "before")
    await ended_with(listeners, "before", t(3))
    redis_server.stop()
    await asyncio.sleep(t(3))
    await asyncio.to_thread(redis_server.start)
    loop = asyncio.get_running_loop()
    started = loop.time()
    probes = 0

    async def probed() -> None:
        nonlocal probes
        probes += 1  # a new number per attempt, even one that failed, so repeats show
        with contextlib.suppress(AssertionError):  # a 503 while it reconnects: try again
            await c.broadcast(sender, f"probe {probes}")
        late = [x for x in listeners if not any(f.startswith("probe") for f in x.frames)]
        assert not late, f"{len(late)} sockets have no probe yet"

    await eventually(probed, t(5 + 1), interval=0.2)
    assert loop.time() - started <= t(5 + 1)
    await c.broadcast(sender, "end")
    await ended(listeners, t(3))
    for x in listeners:
        got = [int(f.split()[1]) for f in x.frames if f.startswith("probe")]
        assert got == sorted(set(got)), (x, got)
        assert x.frames[0] == "before"
    for worker in c.workers:
        backend = await c.backend(worker)
        assert backend["state"] == "connected", (worker.name, backend)
        assert backend["reconnects"] >= 1, (worker.name, backend)


async def ended_with(listeners: list[Listener], last: str, within: float) -> None:
    async def check() -> None:
        waiting = [x for x in listeners if x.frames[-1:] != [last]]
        assert not waiting, f"{len(waiting)} sockets wait for {last!r}"

    await eventually(check, within)


async def test_killing_and_restarting_a_worker_20_times_leaks_nothing(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """20 cycles of SIGKILL and restart of a worker leave Redis's client connections and the
    prefix's key count at their baseline."""
    c = await cluster(2)
    steady, cycled = c.workers

    async def warm(worker: Worker) -> list[Listener]:
        """Give ``worker`` the same sockets and traffic each time."""
        sockets = [await listen(worker, f"w{k}", ["gw"]) for k in range(2)]
        await c.broadcast(worker, f"warm {worker.name}")
        await ended_with(sockets, f"warm {worker.name}", t(3))
        await c.presence(worker, ["gw"], ["w0"])
        return sockets

    await warm(steady)
    sockets = await warm(cycled)

    async def settled() -> tuple[int, int]:
        await asyncio.sleep(0.2)
        return redis_server.count_clients(), redis_server.count_keys(f"{PREFIX}:")

    connections, keys = await settled()
    assert connections >= 2
    assert (connections, keys) == await settled()

    for cycle in range(20):
        c.kill(cycled)
        await close_all(sockets)
        cycled = await c.add()
        sockets = await warm(cycled)

        async def same_connections(cycle: int = cycle) -> None:
            now = redis_server.count_clients()
            assert now == connections, f"cycle {cycle}: {now} connections, baseline {connections}"

        await eventually(same_connections, t(3), interval=0.05)

    async def same_keys() -> None:
        now = redis_server.keys(f"{PREFIX}:")
        assert len(now) == keys, f"{len(now)} keys, baseline {keys}: {now}"

    await eventually(same_keys, t(PRESENCE_TTL + 2), interval=0.1)
    assert redis_server.dbsize() == keys
