"""The slow-consumer decision: what to do with a hub frame that does not fit a socket's outbox.

``max_send_queue`` bounds the bytes waiting for one socket. When a frame would overflow it, the
``slow_consumer_policy`` decides: ``close`` the socket 1013, ``drop_oldest`` hub frames to make
room, or ``drop_newest`` (this frame). A resumable socket is always closed, never dropped from:
its numbering must hold, and its client gets everything back from the replay buffer on resume.
"""

from __future__ import annotations

from enum import Enum


class Overflow(Enum):
    """What to do with a hub frame for one socket."""

    QUEUE = "queue"
    """It fits: queue it."""
    CLOSE = "close"
    """Close the socket 1013 (slow consumer)."""
    MAKE_ROOM = "make_room"
    """Drop the oldest droppable frames (at least the bytes returned), then queue it if it fits."""
    DROP = "drop"
    """Drop this frame."""


def on_overflow(
    queued: int, size: int, limit: int | None, policy: str, *, resumable: bool
) -> tuple[Overflow, int]:
    """The action for a ``size``-byte frame given ``queued`` bytes waiting, and the bytes to
    free for ``MAKE_ROOM`` (else 0)."""
    if limit is None or queued + size <= limit:
        return Overflow.QUEUE, 0
    if resumable or policy == "close":
        return Overflow.CLOSE, 0
    if policy == "drop_oldest" and size <= limit:
        return Overflow.MAKE_ROOM, queued + size - limit
    return Overflow.DROP, 0
