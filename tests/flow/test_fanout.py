"""Fan-out: broadcast, publish, send_to and close through the hub, groups, and the fan-out knobs."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from asgi_ws_stabilizer import Hub, StabilizerMiddleware
from asgi_ws_stabilizer.core.delivery import BroadcastResult
from asgi_ws_stabilizer.errors import InvalidGroupError

from ..timing import WAIT, turns, until
from .fakes import FakeSocket, Probe, finish, holding_app, record_app
from .served import Served, end_all, serve, serve_many


def result(targeted: int, queued: int, dropped: int = 0, closed: int = 0) -> BroadcastResult:
    return BroadcastResult(targeted=targeted, queued=queued, dropped=dropped, closed=closed)


def got(served: Iterable[Served], text: str) -> list[bool]:
    """For each socket, whether the server was asked to send ``text``."""
    return [text in one.texts() for one in served]


async def written(served: Iterable[Served], text: str) -> None:
    """Wait until every socket in ``served`` has had ``text`` written."""
    targets = list(served)
    await until(lambda: all(got(targets, text)), f"{text!r} written to every target")


class Sampler:
    """Calls ``sample`` once per event-loop iteration until stopped (a concurrent observer)."""

    def __init__(self, sample: Callable[[], Any]) -> None:
        self.samples: list[Any] = []
        self._sample = sample
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for _ in range(100_000):
            if self._stop.is_set():
                return
            self.samples.append(self._sample())
            await asyncio.sleep(0)
        raise AssertionError("sampler never stopped")

    async def stop(self) -> list[Any]:
        self._stop.set()
        await asyncio.wait_for(self._task, WAIT)
        return self.samples


# -- broadcast ----------------------------------------------------------------------------------


async def test_broadcast_reaches_every_open_socket() -> None:
    """A broadcast queues the frame for every open socket; each is targeted and queued."""
    hub = Hub()
    served = await serve_many(hub, 3)
    assert await hub.broadcast("hello") == result(3, 3)
    await written(served, "hello")
    assert [one.texts() for one in served] == [["hello"]] * 3
    assert hub.stats()["broadcasts"] == 1
    await end_all(served)


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        ("héllo", {"type": "websocket.send", "text": "héllo"}),
        (b"\x00\xff", {"type": "websocket.send", "bytes": b"\x00\xff"}),
        ({"a": 1, "b": [1, 2]}, {"type": "websocket.send", "text": '{"a":1,"b":[1,2]}'}),
        ([1, "x", None], {"type": "websocket.send", "text": '[1,"x",null]'}),
    ],
    ids=["str", "bytes", "dict", "list"],
)
async def test_message_kinds_become_frames(message: Any, frame: Message) -> None:
    """str goes out as a text frame, bytes as a binary frame, dict/list as compact JSON text."""
    hub = Hub()
    one = await serve(hub)
    await hub.broadcast(message)
    assert await one.sock.next_sent() == frame
    await end_all([one])


async def test_broadcast_of_unsendable_message_raises_before_queueing() -> None:
    """A message of no accepted type raises ``TypeError`` and nothing is queued or counted."""
    hub = Hub()
    one = await serve(hub)
    with pytest.raises(TypeError, match="cannot send a set"):
        await hub.broadcast({1, 2})  # type: ignore[arg-type]
    assert one.connection.gate.queued_bytes == 0
    assert hub.stats()["broadcasts"] == 0
    await turns()
    assert one.texts() == []
    await end_all([one])


async def test_socket_in_handshake_is_not_targeted() -> None:
    """A socket admitted but not yet accepted is neither targeted nor sent the frame."""
    hub = Hub()
    open_one = await serve(hub)
    accept = asyncio.Event()

    async def slow_accept(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await accept.wait()
        await send({"type": "websocket.accept"})

    waiting = FakeSocket()
    waiting_task = waiting.serve(StabilizerMiddleware(slow_accept, hub=hub))
    await until(lambda: hub.connection_count == 2, "the second socket is admitted")
    assert await hub.broadcast("now") == result(1, 1)
    await written([open_one], "now")
    accept.set()
    await finish(waiting_task)
    assert [m["type"] for m in waiting.sent] == ["websocket.accept", "websocket.close"]
    await end_all([open_one])


async def test_closing_socket_is_not_targeted() -> None:
    """A socket whose close is under way is not targeted."""
    hub = Hub()
    served = await serve_many(hub, 2)
    await served[0].handle.close(4000, "bye")
    assert await hub.broadcast("late") == result(1, 1)
    await written(served[1:], "late")
    assert "late" not in served[0].texts()
    await end_all(served)


@pytest.mark.parametrize("how", ["connection_id", "client_id", "handle", "mixed_iterable"])
async def test_broadcast_exclude(how: str) -> None:
    """``exclude`` takes a connection id, a client id, a handle or an iterable of them."""
    hub = Hub()
    served = [
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=bob"),
        await serve(hub, query="client_id=carol"),
    ]
    exclude: Any
    if how == "connection_id":
        exclude, skipped = served[0].handle.connection_id, [0]
    elif how == "client_id":
        exclude, skipped = "alice", [0, 1]
    elif how == "handle":
        exclude, skipped = served[1].handle, [1]
    else:
        exclude, skipped = (
            iter(["bob", served[0].handle, served[3].handle.connection_id]),
            [0, 2, 3],
        )
    kept = [one for i, one in enumerate(served) if i not in skipped]
    assert await hub.broadcast("x", exclude=exclude) == result(len(kept), len(kept))
    await written(kept, "x")
    await turns()
    assert got(served, "x") == [i not in skipped for i in range(4)]
    await end_all(served)


async def test_handle_broadcast_exclude_self() -> None:
    """``handle.broadcast(exclude_self=True)`` skips the sender, alone or with other exclusions."""
    hub = Hub()
    served = await serve_many(hub, 3)
    me = served[0].handle
    assert await me.broadcast("a", exclude_self=True) == result(2, 2)
    assert await me.broadcast("b", exclude_self=True, exclude=served[1].handle) == result(1, 1)
    assert await me.broadcast("c") == result(3, 3)
    await written(served, "c")
    assert [one.texts() for one in served] == [["c"], ["a", "c"], ["a", "b", "c"]]
    await end_all(served)


# -- groups and publish -------------------------------------------------------------------------


async def test_join_leave_and_group_counts() -> None:
    """``join``/``leave`` report a change, and the handle and hub agree on membership."""
    hub = Hub()
    served = [
        await serve(hub, query="client_id=bob"),
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=alice"),
    ]
    for one in served:
        assert await one.handle.join("room")
    assert not await served[0].handle.join("room")
    assert await served[0].handle.join("lobby")
    assert served[0].handle.groups == frozenset({"room", "lobby"})
    assert hub.group_members("room") == ["alice", "bob"]
    assert hub.group_size("room") == 3
    assert hub.groups() == {"room": 3, "lobby": 1}
    assert await served[1].handle.leave("room")
    assert not await served[1].handle.leave("room")
    assert served[1].handle.groups == frozenset()
    assert hub.group_members("room") == ["alice", "bob"]
    assert hub.group_size("room") == 2
    assert await served[2].handle.leave("room")
    assert hub.group_members("room") == ["bob"]
    assert hub.group_members("nobody-here") == []
    await end_all(served)


async def test_disconnect_leaves_every_group() -> None:
    """A socket that goes away leaves its groups; empty groups disappear from the counts."""
    hub = Hub()
    served = await serve_many(hub, 2, app=record_app)
    await served[0].handle.join("a")
    await served[0].handle.join("b")
    await served[1].handle.join("b")
    served[0].sock.disconnect()
    await finish(served[0].task)
    assert hub.groups() == {"b": 1}
    assert hub.group_members("b") == [served[1].handle.client_id]
    await end_all(served[1:])


async def test_publish_reaches_group_members_only() -> None:
    """``publish`` targets the group's open sockets, minus exclusions; others never get it."""
    hub = Hub()
    served = await serve_many(hub, 4)
    for one in served[:3]:
        await one.handle.join("room")
    assert await hub.publish("room", {"n": 1}) == result(3, 3)
    assert await hub.publish("room", "skip-0", exclude=served[0].handle) == result(2, 2)
    assert await served[1].handle.publish("room", "mine", exclude_self=True) == result(2, 2)
    assert await hub.publish("empty", "nobody") == result(0, 0)
    await written(served[:3], '{"n":1}')
    await written(served[1:3], "skip-0")
    await written([served[0], served[2]], "mine")
    assert [one.texts() for one in served] == [
        ['{"n":1}', "mine"],
        ['{"n":1}', "skip-0"],
        ['{"n":1}', "skip-0", "mine"],
        [],
    ]
    assert hub.stats()["publishes"] == 4
    await end_all(served)


@pytest.mark.parametrize("group", ["", "g" * 257, 7, None])
async def test_invalid_group_name_refused(group: Any) -> None:
    """An empty, over-long or non-string group name raises ``InvalidGroupError`` everywhere."""
    hub = Hub()
    one = await serve(hub)
    with pytest.raises(InvalidGroupError, match="1 to 256 characters"):
        await one.handle.join(group)
    with pytest.raises(InvalidGroupError):
        await one.handle.leave(group)
    with pytest.raises(InvalidGroupError):
        await hub.publish(group, "x")
    with pytest.raises(InvalidGroupError):
        hub.group_members(group)
    assert await one.handle.join("g" * 256)
    await end_all([one])


# -- send_to and close --------------------------------------------------------------------------


async def test_send_to_reaches_every_socket_of_a_client() -> None:
    """``send_to`` queues for each socket of the client id and returns how many took it."""
    hub = Hub()
    served = [
        await serve(hub, query="client_id=alice"),
        await serve(hub, query="client_id=bob"),
        await serve(hub, query="client_id=alice"),
    ]
    assert await hub.send_to("alice", b"\x01") == 2
    assert await served[1].handle.send_to("alice", "from-bob") == 2
    assert await hub.send_to("nobody", "x") == 0
    await written([served[0], served[2]], "from-bob")
    assert [one.sock.sent[1:] for one in served] == [
        [
            {"type": "websocket.send", "bytes": b"\x01"},
            {"type": "websocket.send", "text": "from-bob"},
        ],
        [],
        [
            {"type": "websocket.send", "bytes": b"\x01"},
            {"type": "websocket.send", "text": "from-bob"},
        ],
    ]
    assert hub.stats()["direct_sends"] == 3
    await end_all(served)


async def test_close_client_closes_each_socket_with_code_and_reason() -> None:
    """``hub.close`` closes every socket of the client id with the code and reason given."""
    hub = Hub()
    served = [
        await serve(hub, app=record_app, query="client_id=alice"),
        await serve(hub, app=record_app, query="client_id=alice"),
        await serve(hub, app=record_app, query="client_id=bob"),
    ]
    assert await hub.close("alice", 4000, "kicked") == 2
    assert await hub.close("alice", 4001, "again") == 0
    await asyncio.wait_for(asyncio.gather(served[0].task, served[1].task), WAIT)
    await until(lambda: all(one.sock.closes() for one in served[:2]), "the closes are written")
    for one in served[:2]:
        assert one.sock.closes() == [{"type": "websocket.close", "code": 4000, "reason": "kicked"}]
        assert one.probe.received == [
            {"type": "websocket.disconnect", "code": 4000, "reason": "kicked"}
        ]
    assert served[2].handle.state == "open"
    assert hub.client_ids() == ["bob"]
    stats = hub.stats()
    assert stats["closes"] == {"4000": 2}
    assert stats["closed_by"] == {"app": 2}
    await end_all(served[2:])


async def test_close_frame_written_before_handler_returns() -> None:
    """The close frame of ``hub.close`` is out before the handler returns to the server."""
    hub = Hub()
    probe = Probe()
    sock = FakeSocket(query="client_id=alice")
    mw = StabilizerMiddleware(record_app(probe), hub=hub)
    closes_at_return: list[Message] = []

    async def server() -> None:
        await mw(sock.scope, sock.receive, sock.send)
        closes_at_return.extend(sock.closes())

    task = asyncio.create_task(server())
    await sock.accepted()
    assert await hub.close("alice", 4000, "kicked") == 1
    await finish(task)
    assert closes_at_return == [{"type": "websocket.close", "code": 4000, "reason": "kicked"}]


async def test_close_during_handshake_never_sends_accept_after_close() -> None:
    """``hub.close`` of a socket in its handshake never lets the app's accept follow the close."""
    hub = Hub()
    accept = asyncio.Event()

    async def slow_accept(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await accept.wait()
        try:
            await send({"type": "websocket.accept"})
        except OSError:
            return
        await receive()

    sock = FakeSocket(query="client_id=alice")
    task = sock.serve(StabilizerMiddleware(slow_accept, hub=hub))
    await until(lambda: hub.connection_count == 1, "the socket is admitted")
    await hub.close("alice", 4000, "kicked")
    accept.set()
    await finish(task)
    types = [m["type"] for m in sock.sent]
    assert "websocket.accept" not in types[types.index("websocket.close") :]


# -- the fan-out knobs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_shards", "partial"),
    [(1, set()), (2, {4}), (4, {2, 4, 6}), (8, {1, 2, 3, 4, 5, 6, 7})],
)
async def test_num_shards_cuts_fan_out_into_slices(num_shards: int, partial: set[int]) -> None:
    """``num_shards``: a fan-out to 8 sockets yields to the loop between that many slices."""
    hub = Hub(num_shards=num_shards)
    served = await serve_many(hub, 8)
    sampler = Sampler(lambda: hub.stats()["messages_out"])
    await turns(2)
    assert await hub.broadcast("x") == result(8, 8)
    samples = await sampler.stop()
    assert {n for n in samples if 0 < n < 8} == partial
    await written(served, "x")
    await end_all(served)


@pytest.mark.parametrize("limit", [1, 2])
async def test_max_concurrent_broadcast_bounds_fan_outs_in_flight(limit: int) -> None:
    """``max_concurrent_broadcast``: of three fan-outs at once, only that many are under way."""
    hub = Hub(max_concurrent_broadcast=limit, num_shards=2)
    served = await serve_many(hub, 4)

    def spread() -> int:
        # Each fan-out under way has done one of its two slices: one more frame on the first
        # half of the sockets than on the second.
        counts = [one.connection.traffic.messages_out for one in served]
        return max(counts) - min(counts)

    broadcasts = [asyncio.create_task(hub.broadcast(text)) for text in "ABC"]
    sampler = Sampler(spread)
    results = await asyncio.wait_for(asyncio.gather(*broadcasts), WAIT)
    samples = await sampler.stop()
    assert results == [result(4, 4)] * 3
    assert max(samples) == limit
    await written(served, "C")
    await end_all(served)


async def test_waiting_broadcasts_run_in_fifo_order() -> None:
    """``max_concurrent_broadcast``: fan-outs that wait for a slot run in the order they came."""
    hub = Hub(max_concurrent_broadcast=1, num_shards=2)
    served = await serve_many(hub, 4)
    broadcasts = [asyncio.create_task(hub.broadcast(text)) for text in "ABCDE"]
    await asyncio.wait_for(asyncio.gather(*broadcasts), WAIT)
    await written(served, "E")
    assert [one.texts() for one in served] == [list("ABCDE")] * 4
    await end_all(served)


# -- a large fan-out ----------------------------------------------------------------------------

CROWD = 5000


class Tally:
    """How many sockets have had one frame written; an event when all have."""

    def __init__(self, text: str, of: int) -> None:
        self.text = text
        self.of = of
        self.count = 0
        self.all_written = asyncio.Event()


class CountingSocket(FakeSocket):
    """A ``FakeSocket`` that counts, cheaply, the writes of the tallied frame."""

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    async def send(self, message: Message) -> None:
        await super().send(message)
        if message.get("text") == self.tally.text:
            self.tally.count += 1
            if self.tally.count == self.tally.of:
                self.tally.all_written.set()


class StallMeter:
    """Longest gap between two consecutive event-loop iterations, seen from a task of its own."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.iterations = 0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = time.perf_counter()
        for _ in range(1_000_000):
            if self._stop.is_set():
                return
            await asyncio.sleep(0)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            self.iterations += 1
            last = now

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, WAIT)


async def test_broadcast_to_5000_sockets_never_stalls_the_loop_for_long(
    capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    """A broadcast to 5,000 sockets completes; the loop's longest stall is under 1/4 of it."""
    hub = Hub(log_level="ERROR")
    probe = Probe()
    mw = StabilizerMiddleware(holding_app(probe), hub=hub)
    tally = Tally("news", CROWD)
    socks = [CountingSocket(tally) for _ in range(CROWD)]
    tasks = [sock.serve(mw) for sock in socks]
    # Set-up of 5,000 sockets takes seconds under coverage on a busy machine: a roomy bound.
    await until(lambda: hub.stats()["accepted"] == CROWD, "every socket is accepted", 60)
    # The handlers never receive, so each socket gets a pump reading it: let them all start
    # (their first steps are set-up work, not the fan-out's) before measuring.
    await until(lambda: sum(s.receive_calls for s in socks) >= 2 * CROWD, "pumps are reading", 60)
    await turns(5)
    gc.collect()  # a collection of the set-up garbage is no stall of the fan-out's making

    meter = StallMeter()
    await turns(2)
    started = time.perf_counter()
    outcome = await hub.broadcast("news")
    await asyncio.wait_for(tally.all_written.wait(), 5 * WAIT)
    whole = time.perf_counter() - started
    await meter.stop()

    record_property("fanout_sockets", CROWD)
    record_property("fanout_total_ms", round(whole * 1000, 2))
    record_property("fanout_longest_stall_ms", round(meter.longest * 1000, 2))
    with capsys.disabled():
        print(
            f"\nbroadcast to {CROWD} sockets: whole fan-out {whole * 1000:.1f} ms, "
            f"longest loop stall {meter.longest * 1000:.1f} ms "
            f"over {meter.iterations} loop iterations"
        )
    assert outcome == result(CROWD, CROWD)
    assert tally.count == CROWD
    assert meter.longest < whole / 4

    probe.release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert hub.connection_count == 0
