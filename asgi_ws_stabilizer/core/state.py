"""The life of one connection: one enum and the transitions it may make.

``CONNECTING`` until the app accepts (``OPEN``) or refuses (``REFUSED``); ``OPEN`` until a close is
under way (``CLOSING``: queued by the app, the middleware or a drain) or the peer is gone;
``CLOSED`` once the connection has given everything back. A refused handshake ends ``CLOSED`` too,
when its handler returns.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    REFUSED = "refused"

    # Members are singletons compared by identity, so hashing by identity agrees with ``==``;
    # Enum's own ``__hash__`` is Python code, run for every transition (``allowed``).
    __hash__ = object.__hash__


# The members as plain names, for code that compares them once per message or per socket of a
# fan-out (aio/connection.py, aio/outbox.py, hub/messaging.py): ``State.OPEN`` goes through
# ``EnumType``'s attribute hook on every access, many times the cost of a global.
CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED
REFUSED = State.REFUSED


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.OPEN, State.REFUSED, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.REFUSED: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}
"""The transitions a connection may make; any other is refused (and is a bug)."""


def allowed(old: State, new: State) -> bool:
    """Whether a connection in ``old`` may move to ``new``."""
    return new in TRANSITIONS[old]
