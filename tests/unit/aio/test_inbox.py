"""Inbox: the bounded FIFO between the pump and the app, with one final message."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from asgi_ws_stabilizer.aio.inbox import Inbox

from ...timing import WAIT, turns

DISCONNECT: Message = {"type": "websocket.disconnect", "code": 1000}


def msg(text: str) -> Message:
    return {"type": "websocket.receive", "text": text}


async def test_fifo_order() -> None:
    """Messages come out in the order they went in."""
    inbox = Inbox(4)
    for text in "abc":
        inbox.put_nowait(msg(text))
    assert [(await inbox.get())["text"] for _ in range(3)] == ["a", "b", "c"]


async def test_full_at_maxsize() -> None:
    """The inbox reports full at ``maxsize`` items; ``put_nowait`` ignores the bound."""
    inbox = Inbox(2)
    inbox.put_nowait(msg("a"))
    assert not inbox.full()
    inbox.put_nowait(msg("b"))
    assert inbox.full()
    inbox.put_nowait(msg("c"))
    assert len(inbox) == 3


async def test_bounded_put_waits_for_room() -> None:
    """``put`` on a full inbox waits until a ``get`` makes room, then adds its message."""
    inbox = Inbox(1)
    inbox.put_nowait(msg("a"))
    putter = asyncio.create_task(inbox.put(msg("b")))
    await turns()
    assert not putter.done()
    assert len(inbox) == 1
    assert (await inbox.get())["text"] == "a"
    await asyncio.wait_for(putter, WAIT)
    assert (await inbox.get())["text"] == "b"


async def test_get_waits_for_a_message() -> None:
    """``get`` on an empty inbox waits until a message is put."""
    inbox = Inbox(1)
    getter = asyncio.create_task(inbox.get())
    await turns()
    assert not getter.done()
    inbox.put_nowait(msg("a"))
    assert (await asyncio.wait_for(getter, WAIT))["text"] == "a"


async def test_final_delivered_after_queued_items_and_repeats() -> None:
    """The final message comes after every queued one, and again on every later ``get``."""
    inbox = Inbox(4)
    inbox.put_nowait(msg("a"))
    inbox.put_nowait(msg("b"))
    assert inbox.finish(DISCONNECT)
    assert inbox.finished
    got = [await inbox.get() for _ in range(5)]
    assert got == [msg("a"), msg("b"), DISCONNECT, DISCONNECT, DISCONNECT]


async def test_only_first_final_counts() -> None:
    """A second ``finish`` returns ``False`` and does not replace the first final message."""
    inbox = Inbox(1)
    assert inbox.finish(DISCONNECT)
    assert not inbox.finish({"type": "websocket.disconnect", "code": 1009})
    assert await inbox.get() == DISCONNECT


async def test_finish_wakes_blocked_get() -> None:
    """A ``get`` waiting on an empty inbox returns the final message when it is set."""
    inbox = Inbox(1)
    getter = asyncio.create_task(inbox.get())
    await turns()
    inbox.finish(DISCONNECT)
    assert await asyncio.wait_for(getter, WAIT) == DISCONNECT


async def test_finish_wakes_blocked_put() -> None:
    """A ``put`` waiting for room returns when the inbox finishes, without adding its message."""
    inbox = Inbox(1)
    inbox.put_nowait(msg("a"))
    putter = asyncio.create_task(inbox.put(msg("b")))
    await turns()
    assert not putter.done()
    inbox.finish(DISCONNECT)
    await asyncio.wait_for(putter, WAIT)
    assert len(inbox) == 1
    assert [await inbox.get() for _ in range(2)] == [msg("a"), DISCONNECT]


async def test_put_after_finish_is_dropped() -> None:
    """Once finished, ``put`` returns at once and adds nothing."""
    inbox = Inbox(1)
    inbox.finish(DISCONNECT)
    await asyncio.wait_for(inbox.put(msg("late")), WAIT)
    assert len(inbox) == 0
    assert await inbox.get() == DISCONNECT


async def test_cancelled_get_loses_nothing() -> None:
    """A ``get`` cancelled while waiting leaves no stale waiter; the next message is not lost."""
    inbox = Inbox(1)
    getter = asyncio.create_task(inbox.get())
    await turns()
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    inbox.put_nowait(msg("a"))
    assert (await asyncio.wait_for(inbox.get(), WAIT))["text"] == "a"


async def test_final_now_only_when_get_would_return_it_at_once() -> None:
    """``final_now`` is the final message once nothing is queued before it, else ``None``."""
    inbox = Inbox(4)
    assert inbox.final_now() is None  # nothing at all: get would wait
    inbox.put_nowait(msg("a"))
    inbox.finish(DISCONNECT)
    assert inbox.final_now() is None  # "a" comes first
    assert (await inbox.get())["text"] == "a"
    assert inbox.final_now() is DISCONNECT
    assert await inbox.get() is DISCONNECT
