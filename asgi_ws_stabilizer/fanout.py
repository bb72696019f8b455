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

from .messages import Frame

if TYPE_CHECKING:
    from .connection import Connection
    from .handle import ConnectionHandle

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
) -> BroadcastResult:
    """Deliver ``frame`` to every target, yielding to the loop between ``slices`` slices."""
    from .connection import Delivery, State

    result = BroadcastResult()
    step = max(1, -(-len(targets) // slices))
    for start in range(0, len(targets), step):
        if start:
            await asyncio.sleep(0)
        for connection in targets[start : start + step]:
            if connection.state is not State.OPEN:
                continue
            if excluded and (
                connection.connection_id in excluded or connection.client_id in excluded
            ):
                continue
            result.targeted += 1
            outcome = connection.deliver(frame)
            if outcome is Delivery.QUEUED:
                result.queued += 1
            elif outcome is Delivery.QUEUED_AFTER_DROP:
                result.queued += 1
                result.dropped += 1
            elif outcome is Delivery.DROPPED:
                result.dropped += 1
            elif outcome is Delivery.CLOSED:
                result.closed += 1
    return result
