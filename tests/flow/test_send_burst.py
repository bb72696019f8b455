"""A send loop that never waits still lets the event loop run, every SEND_BURST messages,
unless the app reads in between (its reads let the loop run)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Receive, Scope, Send

from asgi_ws_stabilizer import Hub, StabilizerMiddleware
from asgi_ws_stabilizer.aio.sending import SEND_BURST

from .fakes import FakeSocket, finish


async def sends_seen_by_the_loop(read_first: bool) -> list[int]:
    """Serve an app that sends ``2 * SEND_BURST`` messages in a row (the fake server's writes
    never wait), optionally after reading one message; return how many it had sent each time
    another task got to run meanwhile (the turn comes inside the SEND_BURST-th send, before
    the app counts it)."""
    sent = 0
    done = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        if read_first:
            await receive()
        for _ in range(2 * SEND_BURST):
            await send({"type": "websocket.send", "text": "x"})
            sent += 1
        done.set()
        await receive()

    seen: list[int] = []

    async def watcher() -> None:
        while not done.is_set():
            if sent:
                seen.append(sent)
            await asyncio.sleep(0)

    sock = FakeSocket()
    if read_first:
        sock.text("go")
    task = sock.serve(StabilizerMiddleware(app, hub=Hub()))
    watching = asyncio.create_task(watcher())
    await asyncio.wait_for(done.wait(), 5)
    await watching
    sock.disconnect()
    await finish(task)
    return seen


@pytest.mark.parametrize(
    ("read_first", "turns_after"),
    [(False, [SEND_BURST - 1, 2 * SEND_BURST - 1]), (True, [2 * SEND_BURST - 1])],
)
async def test_a_send_loop_turns_the_loop_unless_the_app_read(
    read_first: bool, turns_after: list[int]
) -> None:
    """A send-only loop lets others run every SEND_BURST sends; one that read since the last
    check skips that turn, and the next check (no read since) turns the loop again."""
    assert await sends_seen_by_the_loop(read_first) == turns_after
