"""The ``resume`` scenario: what resumable sessions kept in Redis cost, and how fast a client
gets its messages back on another worker. ``ours`` in ``workers`` processes on one private
Redis (the ``cluster`` scenario's setup, helpers and pinning: every server-side process on the
server core, the load generator on the other).

* **cost**: the ``cluster`` fan-out measured twice in the same run, with the same counts: once
  with plain readers (``/sub``) and once with opted-in readers (``/sub?_stabilizer=1``), whose
  every hub send is also appended to the session's log in Redis. Figures: the workers' CPU per
  delivered message, Redis's CPU per delivered message (apart), and Redis commands per broadcast
  from ``INFO stats`` / ``INFO commandstats`` read before and after (commands the scripts run
  are counted too, since Redis counts them). The two sides take turns within each repeat;
  medians over the repeats (``incomplete_broadcasts`` and the backends' ``gaps``/``dropped``
  summed). The table's last column is opted_in/plain.
* **replay**: ``replay_clients`` opted-in clients on worker A receive ``received_before``
  broadcasts, then drop (the TCP connection closed without a close frame); worker B publishes
  ``away_messages`` (``POST /paced``) while they are away; each client reconnects to worker C
  with its token and ``_stabilizer_seq`` (the data messages it got). Figures: the time from
  starting the reconnect to the last replayed message (p50/p99 over clients), and per client
  the checks resumed, ``replayed == away_messages``, ``missed == 0``, the replayed messages
  being exactly the ones published while away, in order, and a live broadcast after the replay
  reaching it; a client failing any of them counts in ``failures`` (with ``failure_reasons``).

Sessions whose client left stay in Redis for ``session_ttl`` (120 s by default) and every
broadcast is appended to their logs meanwhile; so every measurement (and the replay) gets fresh
workers with a ``WS_STABILIZER_BACKEND_PREFIX`` of its own on the one Redis, at default
settings, and no measurement pays for the sessions of the one before. Each starts with one
unmeasured broadcast, and its measured broadcasts start after the workers' first presence
refresh, which also keeps their served sessions alive (``O(sessions)`` in Redis, then again only
every ``session_ttl`` / 2), so that periodic work stays out of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from . import scenarios
from .client import WSClient, http_post
from .cluster import (
    BROADCAST_SIZE,
    cluster_env,
    fanout_figures,
    settle,
    wait_backends,
    workers_cpu,
)
from .redis_server import SHARED_PORT, RedisServer
from .scenarios import (
    HOST,
    Deliveries,
    Sizes,
    close_all,
    connect_many,
    percentile,
    state,
    wait_registered,
)
from .server import Server

CONTROL = '{"$stabilizer"'
"""How a control frame of the middleware starts (the benchmark never sends such data)."""
DELIVERY_TIMEOUT = 5.0
"""Seconds a broadcast may take to reach every reader before it counts as incomplete."""
REPLAY_TIMEOUT = 10.0
"""Seconds a client may take from reconnecting to its last replayed message (else a failure)."""
PUBLISH_RATE = 1000.0
"""Messages per second worker B publishes while the clients are away."""
FIRST_REFRESH = 10.0 / 3 + 0.5
"""Seconds after the backends connect by which the first presence refresh has run (every
``presence_ttl`` / 3, 10 s by default), with a margin."""
BEFORE_SEQ, LIVE_SEQ = 1_000_000, 2_000_000
"""``seq`` of the broadcasts before the drop and of the one after the replay (those published
while away are numbered from 0 by ``/paced``)."""


@dataclass(frozen=True)
class ResumeSizes:
    """How much work ``resume`` does (chosen from the run's sizes: full, quick or smoke)."""

    workers: int = 3
    readers_per_worker: int = 1000
    broadcasts: int = 20
    repeats: int = 3
    replay_clients: int = 100
    received_before: int = 10
    away_messages: int = 100


FULL = ResumeSizes()
"""About 45 s on 2 cores."""
QUICK = ResumeSizes(readers_per_worker=300, broadcasts=10, repeats=2, replay_clients=50,
                    away_messages=50)  # fmt: skip
SMOKE = ResumeSizes(readers_per_worker=5, broadcasts=2, repeats=1, replay_clients=3,
                    received_before=2, away_messages=5)  # fmt: skip


def sizes_for(sizes: Sizes) -> ResumeSizes:
    """The ``resume`` sizes of a run at ``sizes`` (``--smoke``, ``--quick`` or full)."""
    if sizes == scenarios.SMOKE:
        return SMOKE
    if sizes == scenarios.QUICK:
        return QUICK
    return FULL


# -- Redis's own counters -------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisCounts:
    """``total_commands_processed`` and each command's ``calls`` at one moment."""

    total: int
    calls: dict[str, int]


async def redis_counts(redis: RedisServer) -> RedisCounts:
    """``INFO stats`` and ``INFO commandstats`` of the private Redis (raw RESP, inline commands;
    two ``INFO`` calls, which the differences below leave out)."""
    if redis.port == SHARED_PORT:
        raise RuntimeError("never the shared Redis")
    fields: dict[str, str] = {}
    reader, writer = await asyncio.open_connection(HOST, redis.port)
    try:
        for section in ("stats", "commandstats"):
            writer.write(f"INFO {section}\r\n".encode())
            head = await asyncio.wait_for(reader.readline(), 5)
            if not head.startswith(b"$"):
                raise RuntimeError(f"INFO {section}: unexpected reply {head[:200]!r}")
            body = await asyncio.wait_for(reader.readexactly(int(head[1:]) + 2), 5)
            for line in body.decode().splitlines():
                key, colon, value = line.partition(":")
                if colon and not key.startswith("#"):
                    fields[key] = value
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    calls: dict[str, int] = {}
    for key, value in fields.items():
        if key.startswith("cmdstat_"):
            stats = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            calls[key.removeprefix("cmdstat_")] = int(stats.get("calls", "0"))
    return RedisCounts(int(fields["total_commands_processed"]), calls)


def ops_figures(before: RedisCounts, after: RedisCounts, per: int, unit: str) -> dict[str, Any]:
    """Redis commands between two readings, per ``unit`` (``per`` of them): all of them
    (``total_commands_processed``), the scripts (``EVAL``/``EVALSHA``) and each command that
    ran (the ``INFO`` calls of the readings left out)."""
    delta = {
        name: after.calls.get(name, 0) - before.calls.get(name, 0)
        for name in after.calls.keys() | before.calls.keys()
    }
    info = delta.pop("info", 0)
    scripts = sum(delta.get(name, 0) for name in ("eval", "evalsha", "eval_ro", "evalsha_ro"))
    return {
        f"redis_commands_per_{unit}": (after.total - before.total - info) / per,
        f"redis_scripts_per_{unit}": scripts / per,
        f"redis_calls_per_{unit}": {
            name: count / per for name, count in sorted(delta.items()) if count > 0
        },
    }


# -- cost -----------------------------------------------------------------------------------------


async def cost(
    workers: list[Server], sizes: ResumeSizes, redis: RedisServer, opted_in: bool, start_at: float
) -> dict[str, Any]:
    """The cluster fan-out (broadcasts started on the first worker, readers on every worker)
    with plain or opted-in readers; the measured broadcasts start at ``start_at`` at the
    earliest (``time.monotonic()``)."""
    per_worker, broadcasts = sizes.readers_per_worker, sizes.broadcasts
    sockets = per_worker * len(workers)
    warm, deliveries = Deliveries(sockets), Deliveries(sockets)
    current = [warm]
    session_frames = [0]

    def on_text(text: str, at: float) -> None:
        if text.startswith(CONTROL):
            session_frames[0] += 1
        else:
            current[0].on_text(text, at)

    path = "/sub?_stabilizer=1" if opted_in else "/sub"
    clients: list[WSClient] = []
    for server in workers:
        clients += await connect_many(server, path, per_worker, on_text)
    for server in workers:
        await wait_registered(server, per_worker)
    await asyncio.sleep(0.2)
    publisher = workers[0]
    incomplete = 0
    if not await warm.broadcast(publisher.port, BEFORE_SEQ, BROADCAST_SIZE, DELIVERY_TIMEOUT):
        incomplete = 1
    current[0] = deliveries
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    counts = await redis_counts(redis)
    redis_cpu = redis.cpu()
    cpu = workers_cpu(workers)
    for seq in range(broadcasts):
        if incomplete or not await deliveries.broadcast(
            publisher.port, seq, BROADCAST_SIZE, DELIVERY_TIMEOUT
        ):
            incomplete = broadcasts - seq
            break
    cpu = workers_cpu(workers) - cpu
    redis_cpu = redis.cpu() - redis_cpu
    ops = ops_figures(counts, await redis_counts(redis), broadcasts, "broadcast")
    await close_all(clients)
    await settle(workers)
    figures = fanout_figures(len(workers), sockets, broadcasts, incomplete, cpu, redis_cpu)
    figures["session_frames"] = session_frames[0]
    return figures | deliveries.figures() | ops


# -- replay ---------------------------------------------------------------------------------------


class Tracker:
    """What one socket received: its session frame, and its data messages with their times."""

    def __init__(self) -> None:
        self.session: dict[str, Any] | None = None
        self.session_at = 0.0
        self.data: list[tuple[str, float]] = []
        self.changed = asyncio.Event()

    def on_text(self, text: str, at: float) -> None:
        if text.startswith(CONTROL):
            frame = json.loads(text)
            if frame.get("$stabilizer") == "session":
                self.session, self.session_at = frame, at
        else:
            self.data.append((text, at))
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` holds; whether it did within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    def got(self, n: int) -> bool:
        """Whether it has its session frame and more than ``n`` - 1 data messages."""
        return self.session is not None and len(self.data) >= n

    def seqs(self, start: int = 0) -> list[int]:
        return [int(text.split(" ", 1)[0]) for text, _ in self.data[start:]]


async def replay(workers: list[Server], sizes: ResumeSizes, redis: RedisServer) -> dict[str, Any]:
    """Clients drop from worker A, B publishes while they are away, they resume on C."""
    a, b, c = workers[0], workers[1 % len(workers)], workers[2 % len(workers)]
    k, before, away = sizes.replay_clients, sizes.received_before, sizes.away_messages
    reasons: Counter[str] = Counter()
    failed: set[int] = set()

    def fail(i: int, reason: str) -> None:
        failed.add(i)
        reasons[reason] += 1

    first = [Tracker() for _ in range(k)]
    gate = asyncio.Semaphore(50)

    async def connect(i: int) -> WSClient:
        async with gate:
            return await WSClient.connect(HOST, a.port, "/sub?_stabilizer=1", first[i].on_text)

    clients = list(await asyncio.gather(*(connect(i) for i in range(k))))
    await wait_registered(a, k)
    for i in range(before):
        await http_post(HOST, a.port, f"/broadcast?seq={BEFORE_SEQ + i}&size={BROADCAST_SIZE}")
    ready = await asyncio.gather(
        *(t.until(partial(t.got, before), DELIVERY_TIMEOUT) for t in first)
    )
    for i, ok in enumerate(ready):
        if not ok:
            fail(i, "not_ready_before_drop")
    for client in clients:
        client.abort()
    await wait_registered(a, 0, 30)

    # B publishes while they are away; it answers once Redis has taken every one.
    answer = json.loads(
        await http_post(
            HOST, b.port, f"/paced?rate={PUBLISH_RATE}&seconds={away / PUBLISH_RATE!r}"
            f"&size={BROADCAST_SIZE}",
        )
    )  # fmt: skip
    sent = int(answer["sent"])

    second = [Tracker() for _ in range(k)]
    times: list[float] = []
    counts = await redis_counts(redis)
    redis_cpu = redis.cpu()
    cpu = workers_cpu(workers)

    async def reconnect(i: int) -> WSClient | None:
        old, new = first[i], second[i]
        if old.session is None:
            return None
        query = (
            f"_stabilizer=1&_stabilizer_token={quote(str(old.session['token']), safe='')}"
            f"&_stabilizer_seq={len(old.data)}"
        )
        try:
            async with gate:
                started = time.time()
                client = await WSClient.connect(HOST, c.port, f"/sub?{query}", new.on_text)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            fail(i, f"reconnect_failed: {type(exc).__name__}")
            return None

        def replayed() -> bool:
            return new.session is not None and len(new.data) >= int(new.session["replayed"])

        if not await new.until(replayed, REPLAY_TIMEOUT):
            fail(i, "replay_timeout")
            return client
        assert new.session is not None
        n = int(new.session["replayed"])
        times.append((new.data[n - 1][1] if n else new.session_at) - started)
        if new.session.get("resumed") is not True:
            fail(i, "not_resumed")
        elif n != away or new.session.get("missed") != 0:
            fail(i, "replayed_or_missed_wrong")
        elif new.seqs() != list(range(away)):
            fail(i, "replay_content_wrong")
        return client

    resumed_clients = await asyncio.gather(*(reconnect(i) for i in range(k)))
    cpu = workers_cpu(workers) - cpu
    redis_cpu = redis.cpu() - redis_cpu
    ops = ops_figures(counts, await redis_counts(redis), k, "resume")

    # A new message after the replay reaches every resumed client, once.
    await http_post(HOST, a.port, f"/broadcast?seq={LIVE_SEQ}&size={BROADCAST_SIZE}")
    waiting = [
        i
        for i, (resumed, t) in enumerate(zip(resumed_clients, second, strict=True))
        if resumed is not None and t.session is not None and i not in failed
    ]
    replays = [int((second[i].session or {})["replayed"]) for i in waiting]
    arrived = await asyncio.gather(
        *(second[i].until(partial(second[i].got, n + 1), DELIVERY_TIMEOUT)
          for i, n in zip(waiting, replays, strict=True))
    )  # fmt: skip
    await asyncio.sleep(0.1)  # a duplicate would come right behind it
    for i, n, ok in zip(waiting, replays, arrived, strict=True):
        if not ok:
            fail(i, "live_message_missing")
        elif second[i].seqs(n) != [LIVE_SEQ]:
            fail(i, "live_message_wrong")
    await close_all([client for client in resumed_clients if client is not None])
    await settle(workers)
    frames = [t.session for t in second if t.session is not None]
    result: dict[str, Any] = {
        "clients": k,
        "received_before_drop": before,
        "published_while_away": sent,
        "deferred": answer["deferred"],
        "resumed": sum(1 for f in frames if f.get("resumed") is True),
        "replayed_total": sum(int(f.get("replayed", 0)) for f in frames),
        "missed_total": sum(int(f.get("missed", 0)) for f in frames),
        "failures": len(failed),
        "failure_reasons": dict(sorted(reasons.items())),
        "cpu_ms_per_resume": cpu / k * 1000,
        "redis_cpu_ms_per_resume": redis_cpu / k * 1000,
    }
    if times:
        result |= {
            "p50_ms": percentile(times, 0.5) * 1000,
            "p99_ms": percentile(times, 0.99) * 1000,
            "max_ms": max(times) * 1000,
        }
    return result | ops


# -- the scenario ---------------------------------------------------------------------------------


def median_nested(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median of the numeric figures over repeats, nested dicts too (the rest, and keys
    some run lacks, from the first run)."""
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            merged[key] = median_nested([v for v in values if isinstance(v, dict)])
        elif isinstance(value, int | float) and all(isinstance(v, int | float) for v in values):
            merged[key] = statistics.median(v for v in values if isinstance(v, int | float))
        else:
            merged[key] = value
    return merged


def ratios(opted: dict[str, Any], plain: dict[str, Any]) -> dict[str, float | None]:
    """opted_in / plain of the headline figures."""
    out: dict[str, float | None] = {}
    for key in (
        "cpu_us_per_delivered",
        "redis_cpu_us_per_delivered",
        "cpu_us_per_delivered_with_redis",
        "redis_commands_per_broadcast",
        "last_delivery_ms",
    ):
        a, b = opted.get(key), plain.get(key)
        if isinstance(a, int | float) and isinstance(b, int | float) and b != 0:
            out[key] = a / b
        else:
            out[key] = None
    return out


async def backend_counters(workers: list[Server]) -> dict[str, int]:
    """``gaps`` and ``dropped`` summed over the workers (0 expected)."""
    backends = [(await state(worker))["backend"] for worker in workers]
    return {
        "backend_gaps": sum(int(b["gaps"]) for b in backends),
        "backend_dropped": sum(int(b["dropped"]) for b in backends),
    }


async def resume(redis_executable: str, base: Sizes) -> dict[str, dict[str, Any]]:
    """The whole scenario: ``{"plain": figures, "opted_in": figures with "replay"}``."""
    sizes = sizes_for(base)
    with RedisServer(redis_executable) as redis:
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "opted_in": []}
        for repeat in range(sizes.repeats):
            for mode in ("plain", "opted_in") if repeat % 2 == 0 else ("opted_in", "plain"):
                env = cluster_env(redis)  # a prefix of its own: no sessions of an earlier run
                with contextlib.ExitStack() as stack:
                    workers = [
                        stack.enter_context(Server("ours", env)) for _ in range(sizes.workers)
                    ]
                    await wait_backends(workers)
                    start_at = time.monotonic() + FIRST_REFRESH
                    figures = await cost(workers, sizes, redis, mode == "opted_in", start_at)
                    runs[mode].append(figures | await backend_counters(workers))
        env = cluster_env(redis)
        with contextlib.ExitStack() as stack:
            workers = [stack.enter_context(Server("ours", env)) for _ in range(sizes.workers)]
            await wait_backends(workers)
            replayed = await replay(workers, sizes, redis) | await backend_counters(workers)
    plain, opted = median_nested(runs["plain"]), median_nested(runs["opted_in"])
    for figures, mode in ((plain, "plain"), (opted, "opted_in")):
        figures["repeats"] = len(runs[mode])
        for key in ("incomplete_broadcasts", "backend_gaps", "backend_dropped"):
            figures[key] = sum(int(r[key]) for r in runs[mode])  # summed: none hidden
    opted["vs_plain"] = ratios(opted, plain)
    return {"plain": plain, "opted_in": {**opted, "replay": replayed}}
