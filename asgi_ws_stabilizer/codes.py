"""Close codes the middleware sends, and what a client should do about each.

The 1xxx codes are RFC 6455 section 7.4.1 (and the IANA registry for 1012/1013); the 4xxx codes
are in the range RFC 6455 section 7.4.2 leaves to applications.
"""

from __future__ import annotations

from enum import IntEnum

CLOSE_TIMEOUT = 5.0
"""Seconds the middleware waits for its own close frame to be written (after the app returned,
or when it sheds a socket), and then for the client's reply."""


class CloseCode(IntEnum):
    """WebSocket close codes used by ``asgi_ws_stabilizer``."""

    NORMAL = 1000
    """The app returned without closing: do not reconnect."""
    GOING_AWAY = 1001
    """A drain with "going away": reconnect after the hint."""
    POLICY_VIOLATION = 1008
    """The app identified the client (``identify``) under an id over its connection limit."""
    MESSAGE_TOO_BIG = 1009
    """An inbound message was over ``max_message_size``: do not retry the same message."""
    INTERNAL_ERROR = 1011
    """The app raised after accept: reconnect with backoff."""
    SERVICE_RESTART = 1012
    """A drain before a restart: reconnect after the hint."""
    TRY_AGAIN_LATER = 1013
    """Slow-consumer overflow or memory eviction: reconnect with backoff and resume."""
    HEARTBEAT_TIMEOUT = 4408
    """No inbound frame within ``heartbeat_timeout`` after a ping: reconnect and resume."""
    REPLACED = 4409
    """The same session resumed on a newer socket: do not reconnect."""
    RATE_LIMITED = 4429
    """The inbound rate limit was exceeded: reconnect after a longer backoff."""
