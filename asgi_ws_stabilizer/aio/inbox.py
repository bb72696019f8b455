"""The bounded inbox between the pump and the app's ``receive()``.

uvicorn stops reading a socket until the app has taken the previous message (its read-side flow
control, ``pause_reading`` after each message). The pump reads eagerly so it can see pongs and
disconnects, so the inbox must be bounded or that backpressure is lost: when it is full the pump
stops reading and the server's own flow control takes over.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message

from ..core.memory import Meter

NONE: tuple[()] = ()
"""An inbox's list of messages or of readers before it has had one."""


class Inbox:
    """A bounded FIFO with one final message (the disconnect) that never waits for room.

    Plain lists, not deques: the inbox is short (``receive_queue_size``) and an empty deque
    costs about 600 bytes, which thousands of idle sockets would pay for nothing; and no list
    at all until the first message waits or the first reader does (the shared ``NONE``).
    """

    __slots__ = ("_final", "_getters", "_items", "_meter", "_putter", "bytes", "idle", "maxsize")

    def __init__(self, maxsize: int, meter: Meter | None = None) -> None:
        self.maxsize = maxsize
        self._meter = meter if meter is not None else Meter()
        self.bytes = 0
        self._items: list[tuple[Message, int]] | tuple[()] = NONE
        self._final: Message | None = None
        self._getters: list[asyncio.Future[None]] | tuple[()] = NONE
        self._putter: asyncio.Future[None] | None = None
        self.idle = True
        """Nothing queued and not finished: a ``get`` would wait (read-only outside this
        class). Kept up to date wherever the queue or the final message change, rather than
        computed, because the reader looks at it once per message (aio/reader.py)."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def finished(self) -> bool:
        """Whether the final message has been set."""
        return self._final is not None

    def awaited(self) -> bool:
        """Whether someone waits in ``get``."""
        return bool(self._getters)

    def full(self) -> bool:
        """Whether a ``put`` would wait."""
        return len(self._items) >= self.maxsize

    def put_nowait(self, message: Message, size: int = 0) -> None:
        """Add a message, ignoring the bound (the caller checked ``full()``)."""
        items = self._items
        if isinstance(items, tuple):
            items = self._items = []
        items.append((message, size))
        self.idle = False
        self.bytes += size
        self._meter.inbox += size
        self._wake_getter()

    def clear(self) -> None:
        """Drop every queued message (the connection is being shed)."""
        self._meter.inbox -= self.bytes
        self.bytes = 0
        self._items = NONE
        self.idle = self._final is None

    async def put(self, message: Message, size: int = 0) -> None:
        """Add a message once there is room (or return at once when finished)."""
        while self.full() and self._final is None:
            self._putter = asyncio.get_running_loop().create_future()
            try:
                await self._putter
            finally:
                self._putter = None
        if self._final is None:
            self.put_nowait(message, size)

    def finish(self, message: Message) -> bool:
        """Set the final message, delivered after the queued ones; only the first one counts."""
        if self._final is not None:
            return False
        self._final = message
        self.idle = False
        while self._getters:
            self._wake_getter()
        if self._putter is not None and not self._putter.done():
            self._putter.set_result(None)
        return True

    def final_now(self) -> Message | None:
        """The final message if ``get`` would return it at once (nothing queued before it)."""
        return None if self._items else self._final

    async def get(self) -> Message:
        """The next message; after the final one, the final one again."""
        while not self._items and self._final is None:
            waiter = asyncio.get_running_loop().create_future()
            getters = self._getters
            if isinstance(getters, tuple):
                getters = self._getters = []
            getters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in getters:
                    getters.remove(waiter)
                raise
        items = self._items
        if items:
            assert isinstance(items, list)
            message, size = items.pop(0)
            self.idle = not self._items and self._final is None
            self.bytes -= size
            self._meter.inbox -= size
            if self._putter is not None and not self._putter.done():
                self._putter.set_result(None)
            return message
        assert self._final is not None
        return self._final

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            assert isinstance(getters, list)
            waiter = getters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return
