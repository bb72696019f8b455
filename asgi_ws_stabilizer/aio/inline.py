"""What an inline read of the server needs of asyncio, and what a connection reads at the end.

The reader (aio/reader.py) lets the app's own task read the server; these are the pieces of
asyncio that makes possible, chosen once at import, not looked up per message.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Message

INLINE_READS = sys.version_info >= (3, 11)
"""Whether the app may read the server inline: it relies on ``Task.uncancel`` (3.11+) to tell
our own interruption of that read from a cancellation of the app."""

DISCONNECTED: Message = {"type": "websocket.disconnect", "code": 1006, "reason": ""}


async def ended_receive() -> Message:
    """A connection's ``receive`` once it has given everything back (writer.ended_send says
    why the server's is let go)."""
    return DISCONNECTED


running_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
"""``asyncio.current_task(loop)``: the task running on ``loop`` (once per inline read)."""
if sys.version_info >= (3, 12):
    running_task = asyncio.current_task  # C code
else:
    # On 3.10 and 3.11 (releases that take security fixes only) ``asyncio.current_task`` is
    # Python code around one lookup in this dict (the C tasks' own, bound to this name when
    # asyncio.tasks is imported): doing the lookup itself saves a call per message.
    running_task = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or the same clock without its Python frame: asyncio's own loops define
    ``time()`` as ``time.monotonic()`` (read once per inbound message)."""
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time
