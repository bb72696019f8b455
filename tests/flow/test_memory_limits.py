"""Memory: per-connection and total limits, eviction, usage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import ConnectionHandle, Hub, StabilizerMiddleware
from asgi_ws_stabilizer.core.memory import NO_USER_DATA, deep_size
from asgi_ws_stabilizer.errors import MemoryLimitExceededError, StateError

from ..timing import WAIT, turns, until
from .fakes import FakeSocket, Probe, finish, record_app
from .served import CLOSE, GatedSocket, Served, Valve, end_all, serve, serve_many

SHED = "memory limit: connection shed"


def item(key: str, value: object) -> int:
    """Bytes one ``user_data`` entry is accounted at."""
    return deep_size(key) + deep_size(value)


# -- user data made on first use -------------------------------------------------------------------


async def test_user_data_is_made_on_first_use_and_accounted_from_then() -> None:
    """A socket has no user data of its own until the app first asks for it; the shared empty
    one refuses writes; what is stored then counts in ``memory_usage`` until the socket ends."""
    hub = Hub()
    one = await serve(hub)
    connection = one.connection
    assert connection.user_data is NO_USER_DATA
    with pytest.raises(StateError):
        NO_USER_DATA["k"] = "v"
    assert dict(NO_USER_DATA) == {}
    data = one.handle.user_data
    assert data is connection.user_data is one.handle.user_data
    assert data is not NO_USER_DATA
    data["k"] = "v"
    assert hub.memory_usage()["user_data"] == item("k", "v")
    await end_all([one])
    assert hub.memory_usage()["user_data"] == 0


async def test_user_data_first_used_after_the_end_is_not_accounted() -> None:
    """Data first made after the socket ended (a handler that writes on its way out) is not
    counted: nothing would give its share back."""
    hub = Hub()
    one = await serve(hub)
    connection = one.connection
    handle = one.handle
    await end_all([one])
    handle.user_data["late"] = "x" * 100
    assert connection.user_data["late"] == "x" * 100
    assert hub.memory_usage()["user_data"] == 0


# -- per-connection limit -----------------------------------------------------------------------


async def test_max_memory_per_connection_refuses_a_write_over_it() -> None:
    """``max_memory_per_connection``: a write that would pass it raises and stores nothing."""
    first = item("first", "x" * 100)
    second = item("second", "y" * 100)
    hub = Hub(max_memory_per_connection=first + second)
    one = await serve(hub)
    data = one.handle.user_data
    data["first"] = "x" * 100
    data["second"] = "y" * 100  # exactly at the limit: allowed
    with pytest.raises(MemoryLimitExceededError, match="would use") as caught:
        data["third"] = "z"
    assert caught.value.limit == first + second
    assert caught.value.size == first + second + item("third", "z")
    assert "third" not in data
    assert hub.memory_usage()["user_data"] == first + second
    data["second"] = "y"  # shrinking is always allowed
    assert hub.memory_usage()["user_data"] == first + item("second", "y")
    other = await serve(hub)
    other.handle.user_data["first"] = "x" * 100  # the limit is per connection
    await end_all([one, other])


# -- total limit and eviction -------------------------------------------------------------------


@dataclass
class Trio:
    """Three sockets: A connected first and then active, B idle, C holding the most data."""

    a: Served
    b: Served
    c: Served


async def trio_over_the_limit(policy: str) -> tuple[Hub, Trio]:
    """Connect A, B, C; make A active; store data so that C's write passes the total by 1."""
    sizes = {"a": item("v", "a" * 100), "b": item("v", "b" * 200), "c": item("v", "c" * 300)}
    hub = Hub(memory_eviction_policy=policy, max_total_memory=sum(sizes.values()) - 1)
    a, b, c = await serve_many(hub, 3, app=record_app)
    a.sock.text("activity")
    await until(lambda: len(a.probe.received) == 1, "A's app read the message")
    a.handle.user_data["v"] = "a" * 100
    b.handle.user_data["v"] = "b" * 200
    assert hub.stats()["memory_evictions"] == 0
    with capture_logs() as logs:
        c.handle.user_data["v"] = "c" * 300
    (event,) = [e for e in logs if e["event"] == "memory_eviction"]
    assert event["policy"] == hub.settings.memory_eviction_policy
    assert event["log_level"] == "warning"
    return hub, Trio(a, b, c)


@pytest.mark.parametrize(
    ("policy", "victim"),
    [("lru", "b"), ("fifo", "a"), ("oldest", "a"), ("largest", "c")],
)
async def test_memory_eviction_policy_picks_its_victim(policy: str, victim: str) -> None:
    """``memory_eviction_policy``: lru, fifo (alias oldest) and largest each shed theirs, 1013."""
    hub, trio = await trio_over_the_limit(policy)
    shed = getattr(trio, victim)
    await finish(shed.task)
    await until(lambda: bool(shed.sock.closes()), "the victim's close frame is written")
    assert shed.sock.closes() == [{"type": "websocket.close", "code": 1013, "reason": SHED}]
    assert shed.probe.received[-1] == {"type": "websocket.disconnect", "code": 1013, "reason": SHED}
    kept = [one for one in (trio.a, trio.b, trio.c) if one is not shed]
    await turns()
    assert [one.handle.state for one in kept] == ["open", "open"]
    assert all(one.sock.closes() == [] for one in kept)
    assert hub.stats()["memory_evictions"] == 1
    usage = hub.memory_usage()
    assert usage["total"] == sum(one.connection.user_data.bytes for one in kept)
    limit = hub.settings.max_total_memory
    assert limit is not None
    assert usage["total"] <= limit
    await end_all(kept)


async def test_eviction_close_frame_written_before_handler_returns() -> None:
    """The 1013 close of an evicted socket is out before its handler returns to the server."""
    hub = Hub(max_total_memory=100)
    probe = Probe()
    sock = FakeSocket()
    mw = StabilizerMiddleware(record_app(probe), hub=hub)
    closes_at_return: list[Any] = []

    async def server() -> None:
        await mw(sock.scope, sock.receive, sock.send)
        closes_at_return.extend(sock.closes())

    task = asyncio.create_task(server())
    await sock.accepted()
    assert probe.scope is not None
    handle = probe.scope["state"]["stabilizer"]
    assert isinstance(handle, ConnectionHandle)
    handle.user_data["blob"] = "x" * 1000
    await finish(task)
    assert closes_at_return == [{"type": "websocket.close", "code": 1013, "reason": SHED}]


async def test_eviction_never_sheds_a_socket_in_its_handshake() -> None:
    """A socket still in its handshake is never shed, even when it holds the most memory."""
    hub = Hub(max_total_memory=1000, memory_eviction_policy="largest")
    opened = await serve(hub, app=record_app)
    accept = asyncio.Event()
    handshaking: list[ConnectionHandle] = []

    async def slow_accept(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        handle = scope["state"]["stabilizer"]
        handshaking.append(handle)
        handle.user_data["big"] = "z" * 5000
        await accept.wait()
        await send({"type": "websocket.accept"})

    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(slow_accept, hub=hub))
    await finish(opened.task)
    assert opened.probe.received == [{"type": "websocket.disconnect", "code": 1013, "reason": SHED}]
    (handle,) = handshaking
    assert handle.state == "connecting"
    assert sock.sent == []
    assert hub.stats()["memory_evictions"] == 1
    accept.set()
    await finish(task)
    assert sock.sent[0] == {"type": "websocket.accept"}


@pytest.mark.parametrize("kind", ["outbox", "inbox"])
async def test_max_total_memory_covers_outboxes_and_inboxes(kind: str) -> None:
    """``max_total_memory`` counts queued outbound and unread inbound bytes, not just user data."""
    hub = Hub(max_total_memory=50, memory_eviction_policy="largest")
    bystander = await serve(hub)
    valve = Valve()
    heavy = await serve(hub, sock=GatedSocket(valve))
    valve.shut()
    if kind == "outbox":
        assert await hub.send_to(heavy.handle.client_id, "x" * 60) == 1
    else:
        heavy.sock.text("y" * 60)  # the holding app never reads it
    await until(lambda: hub.stats()["memory_evictions"] == 1, "the heavy socket is shed")
    valve.open()
    await until(lambda: bool(heavy.sock.closes()), "its close frame is written")
    assert heavy.sock.closes() == [{"type": "websocket.close", "code": 1013, "reason": SHED}]
    assert heavy.handle.close_code == 1013
    assert bystander.handle.state == "open"
    await end_all([bystander, heavy])


# -- memory_usage -------------------------------------------------------------------------------


async def test_memory_usage_reports_exact_figures() -> None:
    """``memory_usage`` gives the exact user data, outbox and inbox bytes, largest first."""
    hub = Hub(max_memory_per_connection=10_000)
    reader = await serve(hub, query="client_id=reader")
    valve = Valve()
    stuck = await serve(hub, sock=GatedSocket(valve, query="client_id=stuck"))
    valve.shut()
    reader.handle.user_data["name"] = "alice"
    reader.handle.user_data["scores"] = [1, 2, 3]
    stuck.handle.user_data["blob"] = b"x" * 500
    assert await hub.send_to("stuck", "q" * 100) == 1
    reader.sock.text("hello")
    reader.sock.text("wörld")
    await until(lambda: hub.stats()["messages_in"] == 2, "both messages are in the inbox")

    reader_data = item("name", "alice") + item("scores", [1, 2, 3])
    stuck_data = item("blob", b"x" * 500)
    usage = hub.memory_usage()
    assert usage == {
        "total": reader_data + stuck_data + 100 + 11,
        "user_data": reader_data + stuck_data,
        "outbox": 100,
        "inbox": 11,
        "resume_buffers": 0,
        "connections": 2,
        "max_total_memory": None,
        "max_memory_per_connection": 10_000,
        "largest": [
            {
                "connection_id": stuck.handle.connection_id,
                "client_id": "stuck",
                "bytes": stuck_data + 100,
                "user_data": stuck_data,
                "outbox": 100,
                "inbox": 0,
                "largest_keys": [("blob", stuck_data)],
            },
            {
                "connection_id": reader.handle.connection_id,
                "client_id": "reader",
                "bytes": reader_data + 11,
                "user_data": reader_data,
                "outbox": 0,
                "inbox": 11,
                "largest_keys": sorted(
                    [("name", item("name", "alice")), ("scores", item("scores", [1, 2, 3]))],
                    key=lambda kv: kv[1],
                    reverse=True,
                ),
            },
        ],
    }
    assert [c["client_id"] for c in hub.memory_usage(top=1)["largest"]] == ["stuck"]
    assert reader.handle.memory_used == reader_data + 11

    reader.handle.user_data["scores"].extend(range(100))
    grown = item("name", "alice") + item("scores", reader.handle.user_data["scores"])
    assert hub.memory_usage()["user_data"] == grown + stuck_data

    valve.open()
    await end_all([reader, stuck])
    assert hub.memory_usage()["total"] == 0


# -- max_concurrent_cleanup ---------------------------------------------------------------------


async def shed_by_close(hub: Hub, served: list[Served]) -> None:
    assert await hub.close("crowd", 4000, "bye") == len(served)


async def shed_by_eviction(hub: Hub, served: list[Served]) -> None:
    # fifo sheds the earliest first; the three before the writer hold nothing, so all four go.
    served[-1].handle.user_data["blob"] = "x" * 1000


@pytest.mark.parametrize("shed", [shed_by_close, shed_by_eviction], ids=["hub_close", "eviction"])
@pytest.mark.parametrize("limit", [1, 2])
async def test_max_concurrent_cleanup_bounds_close_frames_in_flight(
    limit: int, shed: Callable[[Hub, list[Served]], Coroutine[Any, Any, None]]
) -> None:
    """``max_concurrent_cleanup``: of many shed sockets, that many close frames are in flight."""
    hub = Hub(max_concurrent_cleanup=limit, max_total_memory=100, memory_eviction_policy="fifo")
    valve = Valve(shut=True)
    served = [
        await serve(hub, sock=GatedSocket(valve, held=CLOSE, query="client_id=crowd"))
        for _ in range(4)
    ]
    shedding = asyncio.create_task(shed(hub, served))
    await until(lambda: valve.in_flight == limit, "the first close frames are being written")
    await turns()
    assert valve.in_flight == limit
    valve.open()
    await asyncio.wait_for(shedding, WAIT)
    await until(lambda: all(one.sock.closes() for one in served), "every close is written")
    assert valve.max_in_flight == limit
    await end_all(served)
