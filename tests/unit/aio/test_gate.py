"""Gate: ordered, one-at-a-time, close-once access to a socket's ``send``."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from asgi_ws_stabilizer import ConnectionGoneError
from asgi_ws_stabilizer.aio.gate import Gate

from ...timing import WAIT, turns, until


def text(t: str) -> Message:
    return {"type": "websocket.send", "text": t}


class ServerSend:
    """A server ``send`` that records frames, can hold one until released, and can fail."""

    def __init__(self) -> None:
        self.written: list[Message] = []
        self.hold: str | None = None
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: BaseException | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    def texts(self) -> list[str]:
        return [m.get("text") or m["type"] for m in self.written]

    async def __call__(self, message: Message) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.fail is not None:
                raise self.fail
            if self.hold is not None and message.get("text") == self.hold:
                self.holding.set()
                await self.release.wait()
            self.written.append(message)
        finally:
            self.in_flight -= 1


class Gone(list[BaseException]):
    """The gate's owner: records each transport failure it is told of."""

    def transport_failed(self, exc: BaseException) -> None:
        self.append(exc)


def make(server: ServerSend) -> tuple[Gate, list[BaseException]]:
    gone = Gone()
    return Gate(server, gone), gone


async def test_inline_send_when_idle() -> None:
    """A send on an idle gate is written at once, without a writer task."""
    server = ServerSend()
    gate, _ = make(server)
    await gate.send(text("a"))
    assert server.texts() == ["a"]
    assert gate.writer is None
    assert gate.backlog == 0


async def test_order_of_inline_sends_and_nowait_backlog() -> None:
    """Frames go out one at a time in hand-over order, inline and queued ones interleaved."""
    server = ServerSend()
    server.hold = "a"
    gate, _ = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    assert gate.send_nowait(text("ping"))
    third = asyncio.create_task(gate.send(text("c")))
    await turns()
    assert gate.send_nowait(text("d"))
    assert gate.backlog == 3
    assert not third.done()
    server.release.set()
    await asyncio.wait_for(asyncio.gather(first, third), WAIT)
    await asyncio.wait_for(gate.flush(), WAIT)
    assert server.texts() == ["a", "ping", "c", "d"]
    assert server.max_in_flight == 1
    assert gate.writer is None


async def test_send_waits_behind_queued_frame_before_writer_runs() -> None:
    """A send right after a queued frame, before the writer has run, still goes out second."""
    server = ServerSend()
    gate, _ = make(server)
    assert gate.send_nowait(text("ping"))
    await gate.send(text("a"))  # directly: a wrapping task would let the writer run first
    assert server.texts() == ["ping", "a"]


async def test_send_nowait_on_idle_gate_writes_at_once() -> None:
    """A frame handed to an idle gate goes out synchronously when the server need not wait."""
    server = ServerSend()
    gate, _ = make(server)
    assert gate.send_nowait(text("ping"))
    assert server.texts() == ["ping"]
    assert gate.writer is None
    assert gate.queued_bytes == 0


async def test_send_nowait_that_blocks_gets_a_writer_task() -> None:
    """When the server's send has to wait, a writer task finishes it and the backlog after it."""
    server = ServerSend()
    server.hold = "slow"
    gate, _ = make(server)
    assert gate.send_nowait(text("slow"), 4)
    assert gate.writer is not None
    assert gate.queued_bytes == 4
    assert gate.send_nowait(text("next"), 4)
    assert gate.backlog == 1
    server.release.set()
    assert await gate.flush(WAIT)
    assert server.texts() == ["slow", "next"]
    assert gate.writer is None
    assert gate.queued_bytes == 0


async def test_blocked_send_nowait_times_out() -> None:
    """A write that blocks longer than ``send_timeout`` marks the gate gone."""
    server = ServerSend()
    server.hold = "stuck"
    gone = Gone()
    gate = Gate(server, gone, send_timeout=0.05)
    assert gate.send_nowait(text("stuck"))
    assert await gate.flush(WAIT)
    assert gate.gone
    assert gate.timed_out
    assert len(gone) == 1
    assert isinstance(gone[0], TimeoutError)


async def test_close_once() -> None:
    """Only the first close is queued and written; later closes return ``False``."""
    server = ServerSend()
    gate, _ = make(server)
    assert gate.close_nowait(4000, "bye")
    assert not gate.close_nowait(1000)
    assert await gate.flush(WAIT)
    assert not gate.close_nowait(1011)
    assert server.written == [{"type": "websocket.close", "code": 4000, "reason": "bye"}]
    assert gate.close_written
    assert (gate.close_code, gate.close_reason) == (4000, "bye")
    assert not gate.open


async def test_send_after_close_raises_connection_gone() -> None:
    """After a close, ``send`` raises ``ConnectionGoneError``, an ``OSError``, with the code."""
    server = ServerSend()
    gate, _ = make(server)
    gate.close_nowait(1000)
    assert await gate.flush(WAIT)
    with pytest.raises(ConnectionGoneError) as info:
        await gate.send(text("late"))
    assert isinstance(info.value, OSError)
    assert info.value.code == 1000
    assert not gate.send_nowait(text("late"))
    assert [m["type"] for m in server.written] == ["websocket.close"]


async def test_frames_queued_before_close_go_first() -> None:
    """A close without ``discard`` goes out after the frames already queued."""
    server = ServerSend()
    gate, _ = make(server)
    gate.send_nowait(text("a"))
    gate.send_nowait(text("b"))
    gate.close_nowait(1000)
    await asyncio.wait_for(gate.flush(), WAIT)
    assert server.texts() == ["a", "b", "websocket.close"]


async def test_close_with_discard_drops_backlog() -> None:
    """A discarding close drops queued frames (their senders get ``ConnectionGoneError``)."""
    server = ServerSend()
    server.hold = "a"
    gate, _ = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    queued = asyncio.create_task(gate.send(text("b")))
    gate.send_nowait(text("c"))
    await turns()
    assert gate.close_nowait(1009, "too big", discard=True)
    with pytest.raises(ConnectionGoneError):
        await asyncio.wait_for(queued, WAIT)
    server.release.set()
    await asyncio.wait_for(first, WAIT)
    await asyncio.wait_for(gate.flush(), WAIT)
    assert server.texts() == ["a", "websocket.close"]


async def test_oserror_from_server_marks_gone() -> None:
    """An ``OSError`` from the server's send makes the gate gone, calls ``on_gone`` once."""
    server = ServerSend()
    gate, gone = make(server)
    failure = ConnectionResetError("peer reset")
    server.fail = failure
    with pytest.raises(ConnectionGoneError) as info:
        await gate.send(text("a"))
    assert info.value.__cause__ is failure
    assert gate.gone
    assert not gate.open
    assert gone == [failure]
    with pytest.raises(ConnectionGoneError):
        await gate.send(text("b"))
    assert not gate.close_nowait(1000)
    assert gone == [failure]


async def test_oserror_fails_waiting_senders() -> None:
    """When the socket goes, senders waiting behind the failed frame get ``ConnectionGoneError``."""
    server = ServerSend()
    server.hold = "a"
    gate, gone = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    waiting = asyncio.create_task(gate.send(text("b")))
    await turns()
    server.fail = BrokenPipeError()
    server.release.set()
    await asyncio.wait_for(first, WAIT)  # "a" was already past the failure point
    with pytest.raises(ConnectionGoneError):
        await asyncio.wait_for(waiting, WAIT)
    assert gate.gone
    assert len(gone) == 1


async def test_runtime_error_on_send_is_gone() -> None:
    """A ``RuntimeError`` from the server on a data frame (send after its own close) means gone."""
    server = ServerSend()
    gate, gone = make(server)
    server.fail = RuntimeError('Cannot call "send" once a close message has been sent.')
    with pytest.raises(ConnectionGoneError):
        await gate.send(text("a"))
    assert gate.gone
    assert len(gone) == 1


async def test_runtime_error_on_close_is_gone() -> None:
    """A ``RuntimeError`` from the server on our close frame means gone, not a crash."""
    server = ServerSend()
    gate, gone = make(server)
    server.fail = RuntimeError("Unexpected ASGI message 'websocket.close'")
    assert gate.close_nowait(1000)
    assert await gate.flush(WAIT)
    assert gate.gone
    assert not gate.close_written
    assert len(gone) == 1


async def test_runtime_error_on_other_message_propagates() -> None:
    """A ``RuntimeError`` on a non-frame message is the caller's error, not a departure."""
    server = ServerSend()
    gate, gone = make(server)
    server.fail = RuntimeError("bad accept")
    with pytest.raises(RuntimeError, match="bad accept"):
        await gate.send({"type": "websocket.accept"})
    assert not gate.gone
    assert gone == []


async def test_invalid_queued_frame_error_reaches_its_sender() -> None:
    """An error writing a queued frame goes to that frame's sender; later frames still go out."""
    server = ServerSend()
    server.hold = "a"
    gate, _ = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    bad = asyncio.create_task(gate.send({"type": "websocket.send", "text": "bad"}))
    good = asyncio.create_task(gate.send(text("c")))
    await turns()

    original = server.__call__

    async def picky(message: Message) -> None:
        if message.get("text") == "bad":
            raise TypeError("not a frame")
        await original(message)

    gate._send = picky
    server.release.set()
    await asyncio.wait_for(first, WAIT)
    with pytest.raises(TypeError, match="not a frame"):
        await asyncio.wait_for(bad, WAIT)
    await asyncio.wait_for(good, WAIT)
    assert server.texts() == ["a", "c"]
    assert gate.open


async def test_mark_gone_fails_backlog_and_refuses() -> None:
    """``mark_gone`` fails the waiting senders and refuses any further frame or close."""
    server = ServerSend()
    server.hold = "a"
    gate, gone = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    waiting = asyncio.create_task(gate.send(text("b")))
    await turns()
    gate.mark_gone()
    with pytest.raises(ConnectionGoneError, match="gone"):
        await asyncio.wait_for(waiting, WAIT)
    assert not gate.send_nowait(text("c"))
    assert not gate.close_nowait(1000)
    assert gone == []  # the caller knows already: no callback
    server.release.set()
    await asyncio.wait_for(first, WAIT)


async def test_flush_times_out_on_stuck_writer() -> None:
    """``flush`` with a timeout returns ``False`` while the server's send is stuck."""
    server = ServerSend()
    server.hold = "ping"
    gate, _ = make(server)
    gate.send_nowait(text("ping"))
    assert not await gate.flush(0.01)
    server.release.set()
    assert await gate.flush(WAIT)


async def test_abandon_stops_writer_and_drops_backlog() -> None:
    """``abandon`` cancels the writer and fails waiting senders."""
    server = ServerSend()
    server.hold = "ping"
    gate, _ = make(server)
    gate.send_nowait(text("ping"))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    waiting = asyncio.create_task(gate.send(text("b")))
    await turns()
    writer = gate.writer
    assert writer is not None
    gate.abandon()
    with pytest.raises(ConnectionGoneError):
        await asyncio.wait_for(waiting, WAIT)
    await until(writer.done, "writer task ends")
    assert writer.cancelled()
    assert server.written == []


async def test_flush_waits_behind_inline_send() -> None:
    """``flush`` returns only once the queued close is written, even behind an inline send."""
    server = ServerSend()
    server.hold = "a"
    gate, _ = make(server)
    first = asyncio.create_task(gate.send(text("a")))
    await asyncio.wait_for(server.holding.wait(), WAIT)
    asyncio.get_running_loop().call_soon(server.release.set)
    assert gate.close_nowait(1000)
    assert await gate.flush(WAIT)
    assert server.texts() == ["a", "websocket.close"]
    await asyncio.wait_for(first, WAIT)


async def test_send_once_keeps_one_waiting_copy() -> None:
    """A frame handed over with ``send_once`` again and again while an earlier write blocks
    waits in the outbox once; once written, the next one queues again."""
    server = ServerSend()
    server.hold = "big"
    gate, _ = make(server)
    pong = text("pong")
    assert gate.send_nowait(text("big"), 3)
    await asyncio.wait_for(server.holding.wait(), WAIT)
    for _ in range(10_000):
        assert gate.send_once(pong, 4)
    assert gate.backlog == 1
    assert gate.queued_bytes == 3 + 4
    gate.send_nowait(text("after"), 5)
    assert gate.send_once(pong, 4)  # still waiting (behind it now: "after")
    server.release.set()
    await asyncio.wait_for(gate.flush(), WAIT)
    assert server.texts() == ["big", "pong", "after"]
    server.hold = None
    assert gate.send_once(pong, 4)
    await asyncio.wait_for(gate.flush(), WAIT)
    assert server.texts() == ["big", "pong", "after", "pong"]
    assert gate.queued_bytes == 0
