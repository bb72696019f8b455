"""Hub sends: whom a send is for, and what it did.

A hub send (``broadcast``, ``publish``, ``send_to``, ``close``) names a ``Target``; the backend
carries it to every process that holds matching sockets, and each process delivers it to its own
sockets and to the sessions of its away clients (hub/messaging.py). ``BroadcastResult`` adds up
what each socket did with the frame (``Delivery``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol, runtime_checkable

from ..errors import InvalidGroupError

MAX_GROUP_NAME = 256


@runtime_checkable
class Identified(Protocol):
    """Anything with a connection id (a ``ConnectionHandle``)."""

    @property
    def connection_id(self) -> str: ...


Exclude = str | Identified | Iterable[str | Identified] | None
"""Connection ids, client ids or handles to leave out of a send."""


def exclusion(exclude: Exclude) -> frozenset[str]:
    """Connection ids and client ids to skip."""
    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        return frozenset((exclude,))
    if isinstance(exclude, Identified):
        return frozenset((exclude.connection_id,))
    return frozenset(
        item.connection_id if isinstance(item, Identified) else str(item) for item in exclude
    )


@dataclass(frozen=True)
class Target:
    """Whom a hub send is for: every socket, a group's sockets, or one client id's sockets (and,
    between processes, one resumable session or one connection)."""

    kind: Literal["all", "group", "client", "session", "connection"]
    name: str = ""
    """The group name, client id, session id or connection id (empty for ``all``)."""


EVERYONE = Target("all")


class Delivery(Enum):
    """What became of a hub frame handed to one connection."""

    QUEUED = "queued"
    QUEUED_AFTER_DROP = "queued_after_drop"
    """Queued, after older hub frames were dropped to make room (``drop_oldest``)."""
    DROPPED = "dropped"
    CLOSED = "closed"
    SKIPPED = "skipped"


QUEUED = Delivery.QUEUED
"""``Delivery.QUEUED`` as a plain name: compared for every socket of a fan-out."""


@dataclass
class BroadcastResult:
    """What one send to many sockets did. Excluded sockets are not targeted."""

    targeted: int = 0
    """Open sockets the message was meant for."""
    queued: int = 0
    """Sockets whose outbox took it."""
    dropped: int = 0
    """Sockets that dropped it, or dropped older messages to take it (then also ``queued``)."""
    closed: int = 0
    """Sockets closed 1013 because their outbox overflowed."""

    @property
    def deferred(self) -> bool:
        """Whether the message waits in the backend's outage buffer (see ``DeferredResult``)."""
        return False

    def count(self, outcome: Delivery) -> None:
        """Add one socket's outcome."""
        self.targeted += 1
        if outcome is Delivery.QUEUED:
            self.queued += 1
        elif outcome is Delivery.QUEUED_AFTER_DROP:
            self.queued += 1
            self.dropped += 1
        elif outcome is Delivery.DROPPED:
            self.dropped += 1
        elif outcome is Delivery.CLOSED:
            self.closed += 1


@dataclass
class DeferredResult(BroadcastResult):
    """A send that waits in the backend's outage buffer: it goes out, in order, when the broker
    is back; how many sockets take it is not known yet (the counts are 0)."""

    @property
    def deferred(self) -> bool:
        return True


def check_group(group: str) -> str:
    """``group`` if it is a usable group name.

    Raises:
        InvalidGroupError: not a string, empty, or longer than 256 characters.
    """
    if not isinstance(group, str) or not group or len(group) > MAX_GROUP_NAME:
        raise InvalidGroupError(
            f"group names are strings of 1 to {MAX_GROUP_NAME} characters, got {group!r:.80}"
        )
    return group
