"""Two hubs in one process sharing a private Redis: the Redis backend's message flow, outages and
presence, driven in process (the workers of the other cluster tests run it in subprocesses)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio

from asgi_ws_stabilizer import BackendUnavailableError, DeferredResult, Hub
from asgi_ws_stabilizer.backends.redis_bus import last_pseq

from ..flow.served import Served, end_all, serve
from ..timing import t, until
from .redis_server import RedisServer

SECRET = "in-process-secret-0123456789abcdef"


def backend(hub: Hub) -> dict[str, object]:
    """``hub.stats()["backend"]``."""
    answer: dict[str, object] = hub.stats()["backend"]
    return answer


async def connected(*hubs: Hub) -> None:
    """Wait until every hub's backend is connected."""
    await until(lambda: all(backend(h)["state"] == "connected" for h in hubs), "connected", t(5))


async def started(*hubs: Hub) -> None:
    """Start every hub, then wait until each one's backend is connected."""
    for hub in hubs:
        await hub.start()
    await connected(*hubs)


@pytest.fixture
async def hubs(redis_server: RedisServer) -> AsyncIterator[Callable[..., Hub]]:
    """``make(**settings)``: a started hub on the private Redis; all stopped after the test."""
    made: list[Hub] = []

    def make(**settings: object) -> Hub:
        hub = Hub(
            backend_url=redis_server.url,
            secret_key=SECRET,
            presence_ttl=2,
            backend_prefix="inproc",
            heartbeat_interval=None,
            **settings,  # type: ignore[arg-type]
        )
        made.append(hub)
        return hub

    yield make
    for hub in made:
        await hub.stop()


async def texts_of(sockets: list[Served], count: int) -> None:
    """Wait until every socket got ``count`` texts."""
    await until(lambda: all(len(s.texts()) >= count for s in sockets), f"{count} texts", t(5))


async def test_sends_reach_both_hubs_once_with_exclusions_and_cluster_counts(
    hubs: Callable[..., Hub],
) -> None:
    """Broadcast, publish, send_to and close from one hub reach the matching sockets of both,
    each once; ``exclude`` works across hubs; the counts are the cluster's."""
    a, b = hubs(), hubs()
    await started(a, b)
    on_a = [await serve(a, query=f"client_id=c{i}") for i in range(2)]
    on_b = [await serve(b, query=f"client_id=c{i}") for i in range(2)]
    await on_a[0].handle.join("room")
    await on_b[1].handle.join("room")
    for _ in range(100):  # both hubs' presence writes are in Redis (bounded wait)
        if (await b.presence.count(), await b.presence.group_size("room")) == (4, 2):
            break
        await asyncio.sleep(0.02)
    result = await b.broadcast("all", exclude=[on_a[1].handle.connection_id])
    assert (result.targeted, result.deferred) == (3, False)
    assert (await a.publish("room", "room")).targeted == 2
    assert await a.send_to("c1", "direct") == 2
    assert await b.send_to("nobody", "x") == 0
    await texts_of([on_a[0], on_b[0], on_b[1]], 1)
    await until(lambda: len(on_b[1].texts()) == 3, "c1 on b got three", t(5))
    assert on_a[0].texts() == ["all", "room"]
    assert on_a[1].texts() == ["direct"]  # excluded from the broadcast
    assert on_b[0].texts() == ["all"]
    assert on_b[1].texts() == ["all", "room", "direct"]
    assert await b.close("c0", 4000, "bye") == 2
    await until(lambda: all(s.handle.close_code == 4000 for s in (on_a[0], on_b[0])), "closed")
    assert backend(a)["received"] == backend(b)["received"] == 5
    await end_all(on_a + on_b)


async def test_presence_spans_hubs_and_a_stopped_hub_leaves_at_once(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Both hubs report the same cluster-wide presence; a hub that stops takes its sockets out
    of presence at once, and leaves no keys."""
    a, b = hubs(), hubs()
    await started(a, b)
    on_a = [await serve(a, query="client_id=alice"), await serve(a, query="client_id=bob")]
    on_b = [await serve(b, query="client_id=alice")]
    await on_a[1].handle.join("g")
    await on_b[0].handle.join("g")
    await on_a[1].handle.identify("robert")

    async def agreed() -> bool:
        answers = [
            (
                await h.presence.count(),
                await h.presence.client_ids(),
                await h.presence.group_members("g"),
                await h.presence.group_size("g"),
                await h.presence.is_online("robert"),
                await h.presence.is_online("bob"),
            )
            for h in (a, b)
        ]
        return (
            answers[0]
            == answers[1]
            == (3, ["alice", "robert"], ["alice", "robert"], 2, True, False)
        )

    for _ in range(100):
        if await agreed():
            break
        await asyncio.sleep(0.02)
    assert await agreed()
    await end_all(on_a)
    await a.stop()
    assert await b.presence.count() == 1
    await end_all(on_b)
    await b.stop()
    assert redis_server.keys("inproc:n:") == []


async def test_an_outage_holds_sends_in_order_drops_past_the_bound_and_recovers(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Redis down: sends return a DeferredResult, the oldest past ``backend_buffer_size`` are
    dropped and counted, presence raises; Redis back: the rest arrive, in order, once."""
    a = hubs(backend_buffer_size=1000)
    await a.start()
    await connected(a)
    sockets = [await serve(a, query=f"client_id=r{i}") for i in range(2)]
    await a.broadcast("before")
    await texts_of(sockets, 1)
    redis_server.stop()
    await until(lambda: backend(a)["state"] == "reconnecting", "reconnecting", t(5))
    with pytest.raises(BackendUnavailableError):
        await a.presence.count()
    for i in range(20):
        result = await a.broadcast(f"{i:02d}".ljust(100, "."))
        assert isinstance(result, DeferredResult)
        assert result.deferred
    held = backend(a)
    assert (held["buffered"], held["dropped"]) == (1000, 10)
    await asyncio.to_thread(redis_server.start)
    await connected(a)
    await texts_of(sockets, 11)
    for socket in sockets:
        assert [text[:2] for text in socket.texts()[1:]] == [f"{i:02d}" for i in range(10, 20)]
    assert backend(a)["buffered"] == 0
    await end_all(sockets)


async def test_killed_connections_repeat_nothing(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """Every Redis connection killed while 300 sends flow: each socket gets each message once,
    in order (a batch whose reply was lost is settled against the bus, not run again)."""
    a, b = hubs(), hubs()
    await started(a, b)
    sockets = [await serve(a, query="client_id=x"), await serve(b, query="client_id=y")]

    async def send_all() -> None:
        for i in range(300):
            await a.broadcast(str(i))
            if i % 20 == 0:
                await asyncio.sleep(0.005)

    sender = asyncio.create_task(send_all())
    for _ in range(3):
        await asyncio.sleep(0.02)
        await asyncio.to_thread(redis_server.kill_clients)
    await asyncio.wait_for(sender, t(10))
    await texts_of(sockets, 300)
    for socket in sockets:
        assert socket.texts() == [str(i) for i in range(300)]
    assert int(str(backend(a)["reconnects"])) >= 1
    await end_all(sockets)


async def test_the_bus_tells_a_writer_its_last_send(
    hubs: Callable[..., Hub], redis_server: RedisServer
) -> None:
    """``last_pseq`` finds a process's newest send in the bus, past other processes' entries
    and across pages; 0 for a process that sent nothing."""
    a, b = hubs(), hubs()
    await started(a, b)
    for i in range(5):
        await a.broadcast(f"a{i}")
    for i in range(1500):  # more than a page of someone else's entries on top
        await b.broadcast(f"b{i}")
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await last_pseq(client, "inproc:bus", str(backend(a)["node"]), 10_000) == 5
        assert await last_pseq(client, "inproc:bus", str(backend(b)["node"]), 10_000) == 1500
        assert await last_pseq(client, "inproc:bus", "nobody", 10_000) == 0
        assert await last_pseq(client, "inproc:bus", str(backend(a)["node"]), 1000) == 0
    finally:
        await client.aclose()
