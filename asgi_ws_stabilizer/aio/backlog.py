"""The backlog under a gate: the frames handed over and not yet written, counted in bytes.

Frames wait here, oldest first, while another frame is being written; ``queued_bytes`` counts
their payload (the frame in flight included) for ``max_send_queue`` and the memory meter.
``Gate`` builds on this: it decides what joins the backlog and writes it out; this class keeps
the frames and their count, drops what may be dropped, and lets a caller wait until nothing is
left (``flush``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from starlette.types import Message

from ..core.memory import Meter


class Item:
    """A frame waiting to be written, with the future its sender awaits (if it waits)."""

    __slots__ = ("done", "droppable", "message", "size")

    def __init__(
        self,
        message: Message,
        size: int,
        done: asyncio.Future[None] | None,
        droppable: bool,
    ) -> None:
        self.message = message
        self.size = size
        self.done = done
        self.droppable = droppable


class Backlog:
    """Frames waiting to be written behind the one in flight, with their bytes on a meter."""

    __slots__ = ("_idle_waiters", "_meter", "_once", "busy", "queued_bytes", "waiting")

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        # Created on first use: an idle socket should not carry an empty deque (about 600 B).
        self.waiting: deque[Item] | None = None
        """The frames waiting, oldest first (read-only outside the gate)."""
        self.busy = False
        """A frame is being written: later frames wait (read-only outside the gate, but for
        the app's send, aio/sending.py, which writes when neither is set)."""
        self._idle_waiters: list[asyncio.Future[None]] | None = None
        self._once: Message | None = None
        """The frame handed over with ``send_once`` that is still waiting to be written."""
        self.queued_bytes = 0
        """Payload bytes handed over and not yet written (the one in flight included)."""

    @property
    def backlog(self) -> int:
        """Frames waiting to be written."""
        return len(self.waiting) if self.waiting else 0

    def items(self) -> list[Item]:
        """The frames waiting to be written, oldest first."""
        return list(self.waiting) if self.waiting else []

    def _append(self, item: Item) -> None:
        queue = self.waiting
        if queue is None:
            queue = self.waiting = deque()
        queue.append(item)
        self._account(item.size)

    def _account(self, delta: int) -> None:
        self.queued_bytes += delta
        self._meter.outbox += delta

    def drop_oldest(self, needed: int) -> tuple[int, int]:
        """Drop the oldest droppable frames until ``needed`` bytes were freed.

        Returns how many frames and bytes were dropped.
        """
        if not self.waiting:
            return 0, 0
        kept: deque[Item] = deque()
        frames = freed = 0
        for item in self.waiting:
            if freed < needed and item.droppable:
                frames += 1
                freed += item.size
            else:
                kept.append(item)
        self.waiting = kept
        self._account(-freed)
        return frames, freed

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every frame handed over is written (or failed).

        Returns ``False`` if ``timeout`` ran out first.
        """
        if not self.busy and not self.waiting:
            return True
        idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._idle_waiters is None:
            self._idle_waiters = []
        self._idle_waiters.append(idle)
        try:
            await asyncio.wait_for(asyncio.shield(idle), timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            if self._idle_waiters and idle in self._idle_waiters:
                self._idle_waiters.remove(idle)
        return True

    def _wake_idle(self) -> None:
        if self.busy or self.waiting or not self._idle_waiters:
            return
        waiters, self._idle_waiters = self._idle_waiters, None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail_queued(self, refuse: Callable[[], BaseException]) -> None:
        """Drop every waiting frame; a sender awaiting one gets the error ``refuse()`` makes."""
        self._once = None
        queue = self.waiting
        while queue:
            item = queue.popleft()
            self._account(-item.size)
            if item.done is not None and not item.done.done():
                item.done.set_exception(refuse())
        self._wake_idle()
