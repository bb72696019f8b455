"""Writing one frame with the server's ``send()``, stepped by hand.

Writes are started synchronously. A server's ``send()`` almost always completes without
suspending (uvicorn, hypercorn and wsproto frame the message and write it to the transport; they
only wait when the transport is paused by backpressure), so the gate steps the coroutine once by
hand (``start``): if it finished, the frame is out with no task, no timer and no task switch, which
is what makes a fan-out to thousands of sockets cheap. Only a write that really blocks gets a
writer task (for queued frames) and a timeout (``finish``).

These helpers take the server's ``send`` and report what happened; what a failure means for the
socket (gone, timed out, closed) is the gate's to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Generator
from typing import Any

from starlette.types import Message, Send

DONE: Any = object()
"""What stepping a write returns when the write has completed (``next``'s default)."""


async def ended_send(message: Message) -> None:
    """A connection's ``send`` once it has given everything back: the server's is let go, as
    the server's protocol object keeps the scope, whose state holds the app's handle, which
    holds the connection (a cycle only the garbage collector would free)."""
    raise RuntimeError("websocket connection has ended")


class Resume:
    """Awaitable that continues a coroutine the gate already stepped once by hand.

    It passes every value the coroutine yields up to the awaiting task, and every value or
    exception the task sends back down to the coroutine, exactly as ``await`` would have.
    """

    __slots__ = ("step", "yielded")

    def __init__(self, step: Generator[Any, Any, Any], yielded: Any) -> None:
        self.step = step
        self.yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        step = self.step
        value = self.yielded
        while True:
            try:
                sent = yield value
            except BaseException as exc:
                try:
                    value = step.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = step.send(sent)
                except StopIteration as stop:
                    return stop.value

    def cancel(self) -> None:
        """Cancel the rest of the write as a task cancellation would (the future it waits on
        first), without awaiting anything; whatever the server raises on the way out is ignored.
        """
        if isinstance(self.yielded, asyncio.Future):
            self.yielded.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError, StopIteration):
            self.step.throw(asyncio.CancelledError())
        with contextlib.suppress(Exception):
            self.step.close()


def start(send: Send, message: Message) -> Resume | None:
    """Step ``send(message)`` once: ``None`` if the frame is out, else the rest of the write.

    Whatever the server raises while taking the frame is raised here.
    """
    step = send(message).__await__()
    # ``next`` with a default, not ``send(None)`` (the same step): a write that completes then
    # returns the default instead of raising StopIteration, which costs more than the step.
    yielded = next(step, DONE)
    if yielded is DONE:
        return None
    return Resume(step, yielded)


async def finish(blocked: Resume, timeout: float | None, on_timeout: Callable[[], None]) -> None:
    """Await the rest of a write that blocked, within ``timeout`` seconds unless it is ``None``.

    Raises:
        TimeoutError: the deadline passed (``on_timeout`` was called first); the write was
            cancelled.
    """
    if timeout is None:
        await blocked
    else:
        await _within(blocked, timeout, on_timeout)


async def _within(blocked: Resume, timeout: float, on_timeout: Callable[[], None]) -> None:
    # asyncio.timeout() is 3.11+; this is the same idea: cancel the writing task when the
    # deadline passes and turn that cancellation into "gone".
    task = asyncio.current_task()
    # A blocked write is only ever finished from a task: the app's own (finish_write, send) or
    # the gate's writer task.
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await blocked
    except asyncio.CancelledError:
        if not expired:
            raise
        if sys.version_info >= (3, 11):
            task.uncancel()
        on_timeout()
        raise TimeoutError(f"send did not finish within {timeout} s") from None
    finally:
        handle.cancel()
