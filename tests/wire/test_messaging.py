"""Broadcast, groups and direct sends on the wire, with a client that stopped reading."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from asgi_ws_stabilizer import Hub
from asgi_ws_stabilizer.core.memory import deep_size

from ..apps import build
from ..conftest import client
from ..servers import SERVER_KINDS, StalledReader, serve
from ..timing import t
from .test_heartbeat import wait_count

HEALTHY = 199
BROADCASTS = 50
PAYLOAD = 10_000
QUEUE_LIMIT = 128 * 1024  # the flood's own 64 KiB write in flight, plus room for 6 broadcasts


async def drain(ws: ClientConnection, want: int, into: list[str | bytes]) -> None:
    """Read until ``want`` frames arrived."""
    while len(into) < want:
        into.append(await ws.recv())


def stalled_broadcast_cases() -> list[Any]:
    cases = [pytest.param(kind, "close", id=f"{kind}-close") for kind in SERVER_KINDS]
    cases += [
        pytest.param("uvicorn-sansio", policy, id=f"uvicorn-sansio-{policy}")
        for policy in ("drop_oldest", "drop_newest")
    ]
    return cases


@pytest.mark.parametrize(("server_kind", "policy"), stalled_broadcast_cases())
async def test_broadcast_with_a_stalled_client(server_kind: str, policy: str) -> None:
    """199 readers get all 50 broadcasts of 10 KB while one stalled client is shed or drops."""
    hub = Hub(heartbeat_interval=None, max_send_queue=QUEUE_LIMIT, slow_consumer_policy=policy)
    app, _ = build("starlette", hub)
    loop = asyncio.get_running_loop()
    async with serve(app, server_kind) as url:
        # The stalled client's handler floods it until every buffer on the way is full (about
        # 2.8 MB on loopback), so the hub's messages for it really pile up in its outbox.
        stalled = await asyncio.to_thread(StalledReader, url, "/flood")
        readers = [
            await client(url + "/listen", max_queue=None).__aenter__() for _ in range(HEALTHY)
        ]
        try:
            await wait_count(hub, HEALTHY + 1, 5)
            (stuck,) = [c for c in hub.registry if c.path == "/flood"]
            for _ in range(100):
                sent = stuck.traffic.bytes_out
                await asyncio.sleep(0.05)
                if stuck.traffic.bytes_out == sent:
                    break
            inboxes: list[list[str | bytes]] = [[] for _ in readers]
            draining = [
                asyncio.create_task(drain(ws, BROADCASTS, box))
                for ws, box in zip(readers, inboxes, strict=True)
            ]
            start = loop.time()
            slowest_call = 0.0
            worst_queue = 0
            for i in range(BROADCASTS):
                before = loop.time()
                result = await hub.broadcast(f"{i:05d}" + "x" * (PAYLOAD - 5))
                slowest_call = max(slowest_call, loop.time() - before)
                assert result.targeted in (HEALTHY, HEALTHY + 1)
                worst_queue = max(worst_queue, *(c.gate.queued_bytes for c in hub.registry))
                await asyncio.sleep(0.005)
            await asyncio.wait_for(asyncio.gather(*draining), t(20))
            last_delivery = loop.time() - start
            for box in inboxes:
                assert [str(m)[:5] for m in box] == [f"{i:05d}" for i in range(BROADCASTS)]
            stats = hub.stats()
            print(
                f"\n[{server_kind} {policy}] {HEALTHY} readers got {BROADCASTS} x {PAYLOAD} B; "
                f"slowest broadcast call {slowest_call * 1000:.1f} ms, last delivery "
                f"{last_delivery * 1000:.0f} ms, worst outbox {worst_queue} B, "
                f"slow_consumer {stats['slow_consumer']}"
            )
            assert slowest_call < t(1.0)
            assert worst_queue <= QUEUE_LIMIT
            assert hub.memory_usage()["outbox"] <= (HEALTHY + 1) * QUEUE_LIMIT
            others = [c for c in hub.registry if c is not stuck]
            assert all(c.close_code is None and c.dropped == 0 for c in others)
            if policy == "close":
                assert stats["slow_consumer"] == {"close": 1}
                assert stuck.close_code == 1013
                assert stuck.dropped == 0
            else:
                assert stats["slow_consumer"][policy] == stuck.dropped > 0
                assert stuck.close_code is None
                kept = [
                    int(item.message["text"][:5]) for item in stuck.gate.items() if item.droppable
                ]
                assert len(kept) + stuck.dropped == BROADCASTS
                if policy == "drop_oldest":
                    assert kept == list(range(BROADCASTS - len(kept), BROADCASTS))
                else:
                    assert kept == list(range(len(kept)))
        finally:
            stalled.close()
            for ws in readers:
                await ws.close()


@pytest.mark.parametrize("server_kind", SERVER_KINDS)
async def test_app_and_hub_sends_keep_their_order(server_kind: str) -> None:
    """The app's own sends and hub sends to one socket arrive in the order they were made."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/cmd?client_id=solo") as ws:
        await ws.send(json.dumps({"mixed": 100}))
        frames = [await asyncio.wait_for(ws.recv(), 3) for _ in range(201)]
    expected = [f"{kind}-{i}" for i in range(100) for kind in ("app", "hub")]
    assert frames[:200] == expected
    assert json.loads(frames[200]) == {"ack": "mixed"}


async def command(ws: ClientConnection, cmd: dict[str, Any]) -> dict[str, Any]:
    """Send a command and return its ack, collecting nothing else."""
    await ws.send(json.dumps(cmd))
    while True:
        frame = await asyncio.wait_for(ws.recv(), 3)
        if isinstance(frame, str) and frame.startswith('{"ack"'):
            return dict(json.loads(frame))


async def nothing_more(ws: ClientConnection) -> None:
    """No frame arrives within a short while."""
    with pytest.raises(asyncio.TimeoutError):  # not the builtin one before 3.11
        await asyncio.wait_for(ws.recv(), t(0.2))


async def test_send_to_reaches_every_socket_of_a_client() -> None:
    """send_to a client id with two sockets reaches both; an unknown id reaches none."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("starlette", hub)
    async with (
        serve(app, "uvicorn-sansio") as url,
        client(url + "/cmd?client_id=bob") as bob1,
        client(url + "/cmd?client_id=bob") as bob2,
        client(url + "/cmd?client_id=alice") as alice,
    ):
        assert (await command(alice, {"send_to": "bob", "msg": {"hi": "bob"}}))["reached"] == 2
        for ws in (bob1, bob2):
            assert await asyncio.wait_for(ws.recv(), 3) == '{"hi":"bob"}'
        assert (await command(alice, {"send_to": "nobody", "msg": "x"}))["reached"] == 0
        await nothing_more(alice)


async def test_groups_publish_and_exclude() -> None:
    """Membership follows join, leave and disconnect; publish reaches members only."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("fastapi", hub)
    async with (
        serve(app, "uvicorn-sansio") as url,
        client(url + "/cmd?client_id=a") as a,
        client(url + "/cmd?client_id=b") as b,
        client(url + "/cmd?client_id=c") as c,
    ):
        assert (await command(a, {"join": "room"}))["ok"] is True
        assert (await command(a, {"join": "room"}))["ok"] is False
        assert (await command(b, {"join": "room"}))["ok"] is True
        assert hub.group_members("room") == ["a", "b"]
        assert hub.groups() == {"room": 2}

        ack = await command(c, {"publish": "room", "msg": "to the room"})
        assert ack["result"] == {"targeted": 2, "queued": 2, "dropped": 0, "closed": 0}
        assert await asyncio.wait_for(a.recv(), 3) == "to the room"
        assert await asyncio.wait_for(b.recv(), 3) == "to the room"

        ack = await command(a, {"publish": "room", "msg": "not me", "exclude_self": True})
        assert ack["result"]["targeted"] == 1
        assert await asyncio.wait_for(b.recv(), 3) == "not me"

        ack = await command(a, {"broadcast": "everyone else", "exclude_self": True})
        assert ack["result"]["targeted"] == 2
        assert await asyncio.wait_for(b.recv(), 3) == "everyone else"
        assert await asyncio.wait_for(c.recv(), 3) == "everyone else"

        assert (await command(b, {"leave": "room"}))["ok"] is True
        assert hub.group_members("room") == ["a"]
        ack = await command(c, {"publish": "room", "msg": "only a"})
        assert ack["result"]["targeted"] == 1
        assert await asyncio.wait_for(a.recv(), 3) == "only a"
        for ws in (a, b, c):
            await nothing_more(ws)
        await a.close()
        await wait_count(hub, 2, 3)
        assert hub.group_members("room") == []
        assert hub.groups() == {}


async def test_flooding_client_closed_4429_others_unaffected() -> None:
    """A client sending at 10x rate_limit is closed 4429; another keeps its echo."""
    hub = Hub(heartbeat_interval=None, rate_limit=20, rate_limit_burst=5)
    app, _ = build("starlette", hub)
    async with (
        serve(app, "uvicorn-sansio") as url,
        client(url + "/listen") as flooder,
        client(url + "/echo") as calm,
    ):

        async def flood() -> None:
            for i in range(400):  # 200 messages a second for up to two seconds
                await flooder.send(f"flood {i}")
                await asyncio.sleep(1 / 200)
            await asyncio.wait_for(flooder.recv(), 3)

        with pytest.raises(ConnectionClosed):
            await flood()
        assert flooder.close_code == 4429
        for i in range(5):
            await calm.send(f"calm {i}")
            assert await asyncio.wait_for(calm.recv(), 3) == f"calm {i}"
            await asyncio.sleep(0.1)
    assert hub.stats()["rate_limited"] == 1


async def test_user_data_limits_on_the_wire() -> None:
    """A user_data write over max_memory_per_connection is refused; memory_usage is exact."""
    hub = Hub(heartbeat_interval=None, max_memory_per_connection=2000)
    app, _ = build("starlette", hub)
    async with serve(app, "uvicorn-sansio") as url, client(url + "/cmd") as ws:
        assert (await command(ws, {"set": "small", "size": 500}))["ok"] is True
        refused = await command(ws, {"set": "big", "size": 3000})
        assert refused == {"ack": "set", "ok": False, "limit": 2000}
        usage = hub.memory_usage()
        assert usage["user_data"] == deep_size("small") + deep_size("x" * 500)
        (conn,) = list(hub.registry)
        assert dict(conn.user_data) == {"small": "x" * 500}
