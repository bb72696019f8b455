"""The reader watch: one timer that makes sure someone reads every socket.

uvicorn stops reading a socket until the app calls ``receive()``, so pongs and disconnects would
go unseen while an app is busy. A socket whose app got a message is put here; a few milliseconds
later (one timer for all sockets, not a callback each) every socket whose app has not come back
to ``receive()`` gets a pump (aio/reader.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

READER_CHECK_DELAY = 0.01
"""Seconds after which a socket whose app has not come back to receive() gets a pump."""


class Attended(Protocol):
    """A socket's reader, as the watch sees it."""

    def check_reader(self) -> None:
        """Start a pump unless someone reads the socket now."""
        ...


class ReaderWatch:
    """Readers whose app may not be back in ``receive()``, looked at by one timer."""

    __slots__ = ("armed", "discard", "unread")

    def __init__(self) -> None:
        self.unread: set[Attended] = set()
        """The readers to look at when the timer fires (read-only outside this class)."""
        self.armed: asyncio.TimerHandle | None = None
        """The pending check's timer, if one is armed (read-only outside this class): a plain
        attribute, so that a reader can see without a call that ``add`` would only need the
        set's ``add`` (aio/reader.py, once per message)."""
        self.discard: Callable[[Attended], None] = self.unread.discard
        """``reader``'s socket is gone: the set's own method. (A reader whose app is back in
        ``receive()`` stays until the check, which sees it reading and leaves it be.)"""

    def add(self, reader: Attended) -> None:
        """``reader``'s app got a message and may not come back to ``receive()`` soon."""
        self.unread.add(reader)
        if self.armed is None:
            self.armed = asyncio.get_running_loop().call_later(READER_CHECK_DELAY, self._check)

    def _check(self) -> None:
        self.armed = None
        pending = list(self.unread)
        self.unread.clear()
        for reader in pending:
            reader.check_reader()
