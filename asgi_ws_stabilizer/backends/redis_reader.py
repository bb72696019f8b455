"""Where each bus entry goes: read once, in the bus's order, from this process's cursor.

A hub send goes to this process's sockets (``LocalDelivery``) and, when the entry lists sessions
this process serves, to their sockets in the numbers Redis gave them (``RedisSessions``); a
``hub.close`` closes the client's sockets here, a kick one socket whose session moved elsewhere.
A gap in the numbers (the bus was trimmed past a process that fell too far behind) is counted
and logged.
"""

from __future__ import annotations

import asyncio

from ..observe.events import Events
from .base import LocalDelivery
from .redis_bus import read_entry
from .redis_sessions import RedisSessions


class BusReader:
    """Hands each bus entry, once and in order, to where it goes in this process."""

    def __init__(self, events: Events, node: str, sessions: RedisSessions) -> None:
        self._events = events
        self._listing = b"o:" + node.encode()
        """This process's field in an entry: the sessions it serves that the entry reached."""
        self._sessions = sessions
        self.local: LocalDelivery | None = None
        self.cursor: int | None = None
        """The number of the last entry read (``None`` until the first connect)."""
        self.received = 0
        self.gaps = 0
        """Entries never read: the bus was trimmed past them."""
        self._closing: set[asyncio.Task[int]] = set()
        self._late: dict[int, list[tuple[str, int]]] = {}
        """Listings an entry did not carry (its sessions were made again after it): by entry."""

    def add_late(self, late: dict[int, list[tuple[str, int]]]) -> None:
        """Deliver these sessions their messages when their entries are read."""
        self._late.update(late)

    async def take(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Deliver one entry (skipped when the cursor is past it)."""
        number = int(entry_id.split(b"-")[0])
        cursor = self.cursor or 0
        if number <= cursor:
            return
        if number > cursor + 1:
            self.gaps += number - cursor - 1
            self._events.backend_gap(missed=number - cursor - 1, total=self.gaps)
        self.cursor = number
        self.received += 1
        local = self.local
        if local is None:
            return
        try:
            entry = read_entry(fields, self._listing)
            if entry.close is not None and entry.target.kind == "connection":
                local.kick(entry.target.name, *entry.close)
            elif entry.close is not None:
                # Writing the closes may wait (CLOSE_TIMEOUT): not on the bus's time. The task
                # sheds the sockets in its first step, before the next entry is delivered.
                code, reason = entry.close
                task = asyncio.get_running_loop().create_task(
                    local.close(entry.target.name, code, reason)
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
                await asyncio.sleep(0)
            elif entry.frame is not None:
                listed = entry.listed
                if self._late:
                    listed = (*listed, *self._late.pop(number, ()))
                if listed:
                    self._sessions.deliver(entry.frame, listed)
                if entry.target.kind != "session":
                    await local.deliver(entry.target, entry.frame, entry.excluded)
        except Exception as exc:  # one bad entry must not stop the bus
            self._events.log.error("backend_delivery_error", entry=number, exc_info=exc)
