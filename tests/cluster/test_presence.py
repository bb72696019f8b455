"""Cluster-wide presence: every process gives the same answers, and a killed one drops out.

``count()`` and ``group_size()`` count sockets; ``client_ids()`` and ``group_members()`` list
client ids (sorted); ``is_online()`` is true while a client has a socket anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ..timing import t
from .conftest import PREFIX, PRESENCE_TTL, StartCluster
from .listeners import Listener, close_all, listen_all
from .redis_server import RedisServer
from .waits import eventually
from .workers import Cluster, Worker

GROUPS = ("ga", "gb", "gc", "gk", "unused")
CLIENT_IDS = (*(f"u{i}" for i in range(10)), *(f"k{i}" for i in range(10)), "ghost")


def presence_of(listeners: Iterable[Listener]) -> dict[str, Any]:
    """What ``GET /presence`` should answer for ``GROUPS`` and ``CLIENT_IDS``."""
    live = [x for x in listeners if x.open]
    online = {x.client_id for x in live}
    return {
        "count": len(live),
        "client_ids": sorted(online),
        "groups": {
            g: {
                "members": sorted({x.client_id for x in live if g in x.groups}),
                "size": sum(1 for x in live if g in x.groups),
            }
            for g in GROUPS
        },
        "online": {c: c in online for c in CLIENT_IDS},
    }


async def agree(
    cluster: Cluster, workers: Iterable[Worker], listeners: list[Listener], within: float
) -> float:
    """Wait until every worker answers presence as ``listeners`` say; the seconds it took."""
    want = presence_of(listeners)
    workers = list(workers)

    async def check() -> None:
        answers = await asyncio.gather(*(cluster.presence(w, GROUPS, CLIENT_IDS) for w in workers))
        for worker, answer in zip(workers, answers, strict=True):
            wrong = {
                k: {"got": answer.get(k), "want": v} for k, v in want.items() if answer.get(k) != v
            }
            assert not wrong, f"{worker.name} disagrees: {wrong}"

    return await eventually(check, within, interval=0.05)


async def test_every_process_reports_the_same_presence(cluster: StartCluster) -> None:
    """After connects, joins, leaves and disconnects on all processes, each process reports the
    same count, client ids, group members, group sizes and online flags within 1 s."""
    c = await cluster(3)
    workers = c.workers
    specs = [
        (
            workers[k % 3],
            f"u{k % 10}",
            [g for g, member in (("ga", k % 2 == 0), ("gb", k % 3 == 0)) if member],
        )
        for k in range(30)
    ]
    listeners = await listen_all(specs)
    await agree(c, workers, listeners, t(1))

    await asyncio.gather(*(x.join("gc") for x in listeners[:6]))
    await agree(c, workers, listeners, t(1))

    await asyncio.gather(*(x.leave("ga") for x in listeners[6:12] if "ga" in x.groups))
    await agree(c, workers, listeners, t(1))

    await close_all(listeners[12:18])
    await agree(c, workers, listeners, t(1))

    await close_all(x for x in listeners if x.client_id == "u3")
    await agree(c, workers, listeners, t(1))
    assert presence_of(listeners)["online"]["u3"] is False
    assert presence_of(listeners)["groups"]["gc"]["size"] > 0


async def test_a_killed_process_drops_out_of_presence_and_redis(
    cluster: StartCluster, redis_server: RedisServer
) -> None:
    """A SIGKILLed process with 10 sockets drops out of every other process's presence within
    presence_ttl + 1 s, and its keys leave Redis within presence_ttl + 2 s."""
    c = await cluster(2)
    stay = await listen_all(
        [(w, f"u{i}", ["ga"] if i % 2 else ["ga", "gk"]) for i, w in enumerate(c.workers * 3)]
    )
    await c.broadcast(c.workers[0], "warm up")
    await agree(c, c.workers, stay, t(1))
    keys_before = redis_server.count_keys(f"{PREFIX}:")
    assert keys_before > 0
    assert redis_server.dbsize() == keys_before, redis_server.keys()

    victim = await c.add()
    doomed = await listen_all(
        [(victim, f"k{i}", ["gk"] if i % 2 else ["gk", "ga"]) for i in range(10)]
    )
    await agree(c, c.alive, stay + doomed, t(1))
    survivors = [w for w in c.workers if w is not victim]
    before_kill = await c.presence(survivors[0], GROUPS, CLIENT_IDS)
    assert before_kill["count"] == len(stay) + 10

    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    c.kill(victim)
    dropped_after = await agree(c, survivors, stay, t(PRESENCE_TTL + 1))
    after_kill = await c.presence(survivors[0], GROUPS, CLIENT_IDS)
    assert after_kill["count"] == before_kill["count"] - 10
    assert dropped_after <= t(PRESENCE_TTL + 1)

    async def keys_gone() -> None:
        keys = redis_server.keys(f"{PREFIX}:")
        assert len(keys) == keys_before, keys

    await eventually(keys_gone, t(PRESENCE_TTL + 2) - (loop.time() - killed_at), interval=0.1)
    assert redis_server.dbsize() == keys_before
