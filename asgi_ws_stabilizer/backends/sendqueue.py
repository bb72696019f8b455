"""What a process has to write to its broker, in order, bounded in bytes (no I/O here).

Hub sends wait here until the writer has them in the broker: normally a few milliseconds, during an
outage until it is over. The payload bytes held are bounded by ``backend_buffer_size``: past it the
oldest held sends are dropped (never one being written), and the caller counts and logs them.
Presence changes ride in the same queue, so that they and the sends reach the broker in the order
they happened; they cost no payload bytes and are never dropped.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Item:
    """One thing to write: a hub send (``args``) or presence changes (``ops``)."""

    args: list[str | bytes] | None = None
    ops: list[str] = field(default_factory=list)
    size: int = 0
    """Payload bytes (sends only)."""
    pseq: int = 0
    """The publisher's number for this send: a retry that already ran is not run twice."""
    done: asyncio.Future[int] | None = None
    """Resolved with the number of sockets it targets across the cluster (0 when dropped)."""
    in_flight: bool = False
    """Being written now: never dropped, never extended."""
    uncertain: bool = False
    """Its write failed without a reply: it may have run (see ``confirm``)."""


class SendQueue:
    """Items to write, oldest first, with the payload bytes they hold."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[Item] = deque()
        self.bytes = 0
        self._pseq = 0
        self.uncertain = False
        """Whether some items may have run already (a write lost its reply): ``confirm``."""

    def __len__(self) -> int:
        return len(self._items)

    def send(self, args: list[str | bytes], size: int, done: asyncio.Future[int] | None) -> int:
        """Queue a hub send; returns how many held sends were dropped to stay within the limit
        (this one included, when it alone is larger than the limit)."""
        self._pseq += 1
        item = Item(args=args, size=size, pseq=self._pseq, done=done)
        if size > self.limit:
            _resolve(item, 0)
            return 1
        self._items.append(item)
        self.bytes += size
        dropped = 0
        while self.bytes > self.limit:
            victim = next((i for i in self._items if i.args is not None and not i.in_flight), None)
            if victim is None:
                break
            self._items.remove(victim)
            self.bytes -= victim.size
            _resolve(victim, 0)
            dropped += 1
        return dropped

    def change(self, *op: str) -> None:
        """Queue one presence change (joined to the last item when that is presence too)."""
        last = self._items[-1] if self._items else None
        if last is not None and last.args is None and not last.in_flight:
            last.ops.extend(op)
        else:
            self._items.append(Item(ops=list(op)))

    def drop_changes(self) -> None:
        """Forget queued presence changes (a full rewrite of the presence supersedes them)."""
        self._items = deque(i for i in self._items if i.args is not None or i.in_flight)

    def take(self, most: int) -> list[Item]:
        """The oldest ``most`` items, now in flight (still queued until ``written``)."""
        batch = list(itertools.islice(self._items, most))
        for item in batch:
            item.in_flight = True
        return batch

    def written(self, results: list[int]) -> None:
        """The first ``len(results)`` items are in the broker; ``results`` are their counts."""
        for count in results:
            item = self._items.popleft()
            self.bytes -= item.size
            _resolve(item, count)

    def failed(self) -> None:
        """The write of the items in flight failed: they wait for the next attempt, and until
        ``confirm`` nobody knows whether they ran."""
        for item in self._items:
            if item.in_flight:
                item.in_flight = False
                item.uncertain = self.uncertain = True

    def confirm(self, last_pseq: int) -> int:
        """The broker has every send up to ``last_pseq``: those items are done (their target
        count is lost: 0). Returns how many."""
        done = 0
        while self._items and self._items[0].uncertain:
            item = self._items[0]
            if item.args is not None and item.pseq > last_pseq:
                break
            # A presence change that may have run is harmless to run again (idempotent), but
            # one queued before a send that ran did run: drop it too.
            self._items.popleft()
            self.bytes -= item.size
            _resolve(item, 0)
            done += item.args is not None
        for item in self._items:
            item.uncertain = False
        self.uncertain = False
        return done


async def within(done: asyncio.Future[int], timeout: float) -> int | None:
    """The result of ``done``, or ``None`` if it takes longer than ``timeout`` seconds (``done``
    goes on). A timer and a callback rather than wait_for and shield, which make two tasks per
    call."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[int | None] = loop.create_future()

    def settle(result: asyncio.Future[int] | None = None) -> None:
        if not waiter.done():
            waiter.set_result(None if result is None or result.cancelled() else result.result())

    done.add_done_callback(settle)
    alarm = loop.call_later(timeout, settle)
    try:
        return await waiter
    finally:
        alarm.cancel()


def _resolve(item: Item, count: int) -> None:
    if item.done is not None and not item.done.done():
        item.done.set_result(count)
