"""Hub frames into one socket's outbox, under ``max_send_queue`` and the slow-consumer policy.

A hub send never waits for a socket: the frame is queued on the socket's gate without waiting,
as long as the bytes waiting stay within ``max_send_queue``. When they would not, the decision in
core/backpressure.py says what gives: the socket (closed 1013), older hub frames, or this one.
Frames the app sends itself are never dropped: its ``send`` waits instead.
"""

from __future__ import annotations

from ..codes import CloseCode
from ..core.backpressure import Overflow, on_overflow
from ..core.delivery import QUEUED, Delivery
from ..core.messages import Frame
from ..core.state import OPEN
from .connection import Connection


def deliver(connection: Connection, frame: Frame, limit: int | None) -> Delivery:
    """Queue a hub frame for ``connection`` without waiting, applying the slow-consumer policy
    (``limit`` is ``max_send_queue``, read once per fan-out)."""
    gate = connection.gate
    session = connection.session
    if gate.close_code is not None or gate.gone or connection.state is not OPEN:
        if session is not None and session.connection_id == connection.connection_id:
            session.keep(frame.message, frame.size)  # for the client's resume
        return Delivery.SKIPPED
    outcome = QUEUED
    if limit is not None and gate.queued_bytes + frame.size > limit:
        policy = connection.port.settings.slow_consumer_policy
        action, needed = on_overflow(
            gate.queued_bytes, frame.size, limit, policy, resumable=session is not None
        )
        if action is Overflow.CLOSE:
            if session is not None:
                session.keep(frame.message, frame.size)  # the replay brings it back
            _slow_consumer(connection, "close", 1)
            connection.abort(CloseCode.TRY_AGAIN_LATER, "slow consumer: send queue full")
            return Delivery.CLOSED
        if action is Overflow.MAKE_ROOM:
            frames, freed = gate.drop_oldest(needed)
            if frames:
                connection.traffic.messages_out -= frames
                connection.traffic.bytes_out -= freed
                _dropped(connection, frames, "drop_oldest")
                outcome = Delivery.QUEUED_AFTER_DROP
        if gate.queued_bytes + frame.size > limit:
            _dropped(connection, 1, policy)
            return Delivery.DROPPED
    if session is not None:
        session.record(frame.message, frame.size)
    gate.send_nowait(frame.message, frame.size, droppable=True)
    traffic = connection.traffic
    traffic.messages_out += 1
    traffic.bytes_out += frame.size
    if gate.queued_bytes:  # held in the outbox (a frame written at once holds nothing)
        connection.port.grew()
    return outcome


def _dropped(connection: Connection, frames: int, policy: str) -> None:
    _slow_consumer(connection, policy, frames)
    connection.dropped += frames


def _slow_consumer(connection: Connection, action: str, frames: int) -> None:
    connection.port.events.slow_consumer(
        connection.log,
        action=action,
        frames=frames,
        dropped_before=connection.dropped,
        client_id=connection.client_id,
        queued_bytes=connection.gate.queued_bytes,
        limit=connection.port.settings.max_send_queue,
    )
