"""Presence and backend stats in memory mode: the hub answers for this process's sockets."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer import Hub

from .served import end_all, serve


async def test_presence_starts_empty() -> None:
    """A hub with no sockets has no one online and no group members."""
    hub = Hub()
    assert await hub.presence.count() == 0
    assert await hub.presence.client_ids() == []
    assert await hub.presence.group_members("room") == []
    assert await hub.presence.group_size("room") == 0
    assert not await hub.presence.is_online("alice")


async def test_presence_follows_connects_and_disconnects() -> None:
    """Each accepted socket counts, under its client id, until its client leaves."""
    hub = Hub()
    alice_1 = await serve(hub, query="client_id=alice")
    alice_2 = await serve(hub, query="client_id=alice")
    bob = await serve(hub, query="client_id=bob")
    try:
        assert await hub.presence.count() == 3
        assert await hub.presence.client_ids() == ["alice", "bob"]
        assert await hub.presence.is_online("alice")
        assert await hub.presence.is_online("bob")
        assert not await hub.presence.is_online("carol")

        await end_all([alice_1])
        assert await hub.presence.count() == 2
        assert await hub.presence.is_online("alice")

        await end_all([bob])
        assert await hub.presence.count() == 1
        assert await hub.presence.client_ids() == ["alice"]
        assert not await hub.presence.is_online("bob")
    finally:
        await end_all([alice_1, alice_2, bob])
    assert await hub.presence.count() == 0
    assert await hub.presence.client_ids() == []
    assert not await hub.presence.is_online("alice")


async def test_presence_follows_joins_and_leaves() -> None:
    """Group members and sizes follow ``join`` and ``leave``; each client is listed once."""
    hub = Hub()
    served = [
        await serve(hub, query="client_id=carol"),
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=bob"),
    ]
    carol, alice_1, alice_2, bob = served
    try:
        for one in (carol, alice_1, alice_2):
            assert await one.handle.join("room")
        assert await bob.handle.join("lobby")
        assert await hub.presence.group_members("room") == ["alice", "carol"]
        assert await hub.presence.group_size("room") == 3
        assert await hub.presence.group_members("lobby") == ["bob"]
        assert await hub.presence.group_size("lobby") == 1

        assert await alice_1.handle.leave("room")
        assert await hub.presence.group_members("room") == ["alice", "carol"]
        assert await hub.presence.group_size("room") == 2

        assert await carol.handle.leave("room")
        assert await hub.presence.group_members("room") == ["alice"]
        assert await hub.presence.group_size("room") == 1
        assert await hub.presence.count() == 4
    finally:
        await end_all(served)


async def test_a_disconnect_takes_the_socket_out_of_its_groups() -> None:
    """When a member's client leaves, it is no longer counted in its group."""
    hub = Hub()
    alice = await serve(hub, query="client_id=alice")
    bob = await serve(hub, query="client_id=bob")
    try:
        assert await alice.handle.join("room")
        assert await bob.handle.join("room")
        await end_all([alice])
        assert await hub.presence.group_members("room") == ["bob"]
        assert await hub.presence.group_size("room") == 1
    finally:
        await end_all([alice, bob])
    assert await hub.presence.group_members("room") == []
    assert await hub.presence.group_size("room") == 0


async def test_presence_follows_identify() -> None:
    """A socket that identifies is listed under its new client id, and no longer the old one."""
    hub = Hub()
    one = await serve(hub, query="client_id=guest-1")
    try:
        assert await one.handle.join("room")
        await one.handle.identify("dave")
        assert await hub.presence.client_ids() == ["dave"]
        assert await hub.presence.is_online("dave")
        assert not await hub.presence.is_online("guest-1")
        assert await hub.presence.group_members("room") == ["dave"]
    finally:
        await end_all([one])


async def test_presence_agrees_with_the_hub_queries() -> None:
    """``hub.presence`` in memory mode answers as the hub's own process-local queries."""
    hub = Hub()
    served = [
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=bob"),
    ]
    try:
        assert await served[0].handle.join("room")
        assert await hub.presence.count() == hub.connection_count
        assert await hub.presence.client_ids() == sorted(hub.client_ids())
        assert await hub.presence.group_members("room") == hub.group_members("room")
        assert await hub.presence.group_size("room") == hub.group_size("room")
    finally:
        await end_all(served)


async def test_stats_backend_in_memory_mode() -> None:
    """``stats()["backend"]`` names the memory backend, connected, with nothing published yet."""
    hub = Hub()
    backend = hub.stats()["backend"]
    assert backend["kind"] == "memory"
    assert backend["state"] == "connected"
    assert backend["url"] == "memory://"
    assert backend["published"] == 0
    assert backend["dropped"] == 0
    assert backend["buffered"] == 0


@pytest.mark.parametrize("sockets", [0, 2])
async def test_stats_backend_counts_hub_sends(sockets: int) -> None:
    """Each ``broadcast``, ``publish`` and ``send_to`` counts once in ``published``, whether or
    not any socket takes it."""
    hub = Hub()
    served = [await serve(hub, query="client_id=alice") for _ in range(sockets)]
    try:
        await hub.broadcast({"n": 1})
        assert hub.stats()["backend"]["published"] == 1
        await hub.publish("room", {"n": 2})
        await hub.send_to("alice", {"n": 3})
        await hub.send_to("nobody", {"n": 4})
        assert hub.stats()["backend"]["published"] == 4
        if served:
            await served[0].handle.broadcast({"n": 5}, exclude_self=True)
            assert hub.stats()["backend"]["published"] == 5
    finally:
        await end_all(served)
    assert hub.stats()["backend"]["kind"] == "memory"
    assert hub.stats()["backend"]["state"] == "connected"
