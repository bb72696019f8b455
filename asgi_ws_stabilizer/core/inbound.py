"""What one inbound message is: the decision the reader acts on, made without I/O.

The reader (aio/reader.py) hands every ``websocket.receive`` to ``InboundRules.classify`` with the
loop's time, then acts: a heartbeat pong is timed and hidden, a client ping is answered and hidden,
data goes to the app, and a message over a limit ends the connection with the code that says so.
"""

from __future__ import annotations

import sys
from enum import Enum

from starlette.types import Message

from .ratelimit import TokenBucket


class Inbound(Enum):
    """The kinds of inbound message."""

    DATA = "data"
    """For the app."""
    PONG = "pong"
    """The answer to our heartbeat ping: hidden from the app."""
    PING = "ping"
    """The client's own text heartbeat: answered with a pong, hidden from the app."""
    LATE = "late"
    """Data after the connection began closing: the app has been told, more is moot."""
    RATE_LIMITED = "rate_limited"
    """Over ``rate_limit``: the connection is closed 4429."""
    TOO_BIG = "too_big"
    """Over ``max_message_size``: the connection is closed 1009."""


# The members as plain names, for the code that runs once per inbound message (here and in
# aio/reader.py): ``Inbound.DATA`` goes through ``EnumType``'s attribute hook on every access
# (about 15 times the cost of a global on 3.11).
DATA = Inbound.DATA
PONG = Inbound.PONG
PING = Inbound.PING
LATE = Inbound.LATE
RATE_LIMITED = Inbound.RATE_LIMITED
TOO_BIG = Inbound.TOO_BIG


class InboundRules:
    """A hub's rules for inbound messages: the heartbeat texts and the size limit (the rate
    limit is each connection's own ``TokenBucket``)."""

    __slots__ = ("heartbeat_on", "max_size", "ping", "pong", "size_limit")

    def __init__(self, *, ping: str, pong: str, heartbeat_on: bool, max_size: int | None) -> None:
        self.ping = ping
        self.pong = pong
        self.heartbeat_on = heartbeat_on
        self.max_size = max_size
        self.size_limit = sys.maxsize if max_size is None else max_size
        """``max_size`` as a number either way (the reader's inlined check compares it)."""

    def classify(
        self,
        message: Message,
        now: float,
        bucket: TokenBucket | None,
        beating: bool,
        closing: bool,
    ) -> tuple[Inbound, int]:
        """What ``message`` (a ``websocket.receive``) is, and its payload size for data.

        ``beating``: the socket gets our text heartbeat, so the pong text is a pong (else it is
        data like any other). ``closing``: a close is under way. A client ping counts against
        the rate limit (``bucket``, at ``now`` on the loop's clock) like data: a ping flood must
        not go unpunished.
        """
        text = message.get("text")
        if beating and text == self.pong:
            return PONG, 0
        if self.heartbeat_on and text == self.ping:
            if bucket is not None and not bucket.allow(now):
                return RATE_LIMITED, 0
            return PING, 0
        if closing:
            return LATE, 0
        if bucket is not None and not bucket.allow(now):
            return RATE_LIMITED, 0
        # payload_size(message), inlined (with the text looked up once): this runs once per
        # inbound message, where two nested calls showed in the profile.
        if text is not None:
            size = len(text) if text.isascii() else len(text.encode())
        else:
            data = message.get("bytes")
            size = len(data) if data is not None else 0
        max_size = self.max_size
        if max_size is not None and size > max_size:
            return TOO_BIG, size
        return DATA, size
