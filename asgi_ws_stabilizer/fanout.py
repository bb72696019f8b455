"""Fan-out: one frame to many sockets without awaiting any of them.

Each socket gets the frame through its own outbox (``Connection.deliver``), so a slow consumer
never delays anyone else. The target list is cut into ``num_shards`` slices and the fan-out yields
to the event loop between slices, so a broadcast to many thousands of sockets never blocks the
loop for its whole length; ``max_concurrent_broadcast`` fan-outs run at once, the rest wait their
turn in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .messages import Delivery, Frame

if TYPE_CHECKING:
    from .connection import Connection
    from .handle import ConnectionHandle
    from .sessions import Session

Exclude = Union[str, "ConnectionHandle", Iterable[Union[str, "ConnectionHandle"]], None]


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


def exclusion(exclude: Exclude) -> frozenset[str]:
    """Connection ids and client ids to skip."""
    from .handle import ConnectionHandle

    if exclude is None:
        return frozenset()
    if isinstance(exclude, str):
        return frozenset((exclude,))
    if isinstance(exclude, ConnectionHandle):
        return frozenset((exclude.connection_id,))
    ids = set()
    for item in exclude:
        ids.add(item.connection_id if isinstance(item, ConnectionHandle) else str(item))
    return frozenset(ids)


async def fan_out(
    targets: Sequence[Connection],
    frame: Frame,
    excluded: frozenset[str],
    slices: int,
    *,
    away: Sequence[Session] = (),
) -> BroadcastResult:
    """Deliver ``frame`` to every target, yielding to the loop between ``slices`` slices.

    A resumable socket is reached through its session, looked up at the moment of delivery
    (the list was made before this fan-out waited its turn and yields between slices, and a
    resume may have moved the session to a newer socket meanwhile): the session's socket gets
    the frame if it is open, else the session keeps it for its replay. A session takes the
    frame once, however many of its sockets are in the list (an old half-open one and its
    replacement); ``away`` are sessions whose client is away, reached the same way after the
    sockets.
    """
    from .connection import State

    result = BroadcastResult()
    reached: set[int] = set()  # ids of the sessions reached
    step = max(1, -(-len(targets) // slices))
    for start in range(0, len(targets), step):
        if start:
            await asyncio.sleep(0)
        for connection in targets[start : start + step]:
            session = connection.session
            if session is not None:
                if id(session) not in reached:
                    reached.add(id(session))
                    # Excluding the socket it was found through keeps it out of the replay too.
                    held_back = bool(excluded) and _excludes(excluded, connection)
                    _to_session(session, frame, excluded, result, keep=not held_back)
                continue
            if connection.state is not State.OPEN:
                continue
            if excluded and _excludes(excluded, connection):
                continue
            result.targeted += 1
            _tally(result, connection.deliver(frame))
    for session in away:
        if id(session) in reached or (excluded and session.client_id in excluded):
            continue
        reached.add(id(session))
        _to_session(session, frame, excluded, result, keep=True)
    return result


def _to_session(
    session: Session,
    frame: Frame,
    excluded: frozenset[str],
    result: BroadcastResult,
    *,
    keep: bool,
) -> None:
    """Deliver to ``session``'s socket if it is open now (unless excluded), else keep the
    frame for its replay when ``keep``."""
    from .connection import State

    current = session.connection
    if current is not None and current.state is State.OPEN:
        if excluded and _excludes(excluded, current):
            return
        result.targeted += 1
        _tally(result, current.deliver(frame))
    elif keep:
        session.keep(frame.message, frame.size)


def _tally(result: BroadcastResult, outcome: Delivery) -> None:
    if outcome is Delivery.QUEUED:
        result.queued += 1
    elif outcome is Delivery.QUEUED_AFTER_DROP:
        result.queued += 1
        result.dropped += 1
    elif outcome is Delivery.DROPPED:
        result.dropped += 1
    elif outcome is Delivery.CLOSED:
        result.closed += 1


def _excludes(excluded: frozenset[str], connection: Connection) -> bool:
    return connection.connection_id in excluded or connection.client_id in excluded
