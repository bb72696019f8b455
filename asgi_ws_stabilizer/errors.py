"""Exceptions raised by ``asgi_ws_stabilizer``.

The hierarchy::

    StabilizerError
    ├── SettingsError (also ValueError)          a setting has a bad value
    ├── NotInstalledError (also RuntimeError)    the middleware is not in the app's stack
    ├── StateError (also RuntimeError)           an operation in the wrong state
    ├── MemoryLimitExceededError                 a user_data write over a memory limit
    ├── InvalidGroupError (also ValueError)      a group name that is empty or too long
    ├── InvalidTokenError                         a resume token that is malformed or forged
    │   ├── TokenExpiredError                     … genuine but expired
    │   └── TokenSpentError                       … genuine but already used
    └── ConnectionGoneError (also OSError)       send on a socket that is closed or gone

``ConnectionGoneError`` subclasses ``OSError`` on purpose: ASGI 2.4 says a send on a closed
connection raises an ``OSError`` subclass, and Starlette turns ``OSError`` from ``send`` into
``WebSocketDisconnect``, so a send-only handler loop ends on it.
"""

from __future__ import annotations


class StabilizerError(Exception):
    """Base class of every error this package raises."""


class SettingsError(StabilizerError, ValueError):
    """A setting has a bad value.

    Attributes:
        problems: one ``(field, env_var, message)`` triple per bad value.
    """

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [f"{field} (env {env}): {message}" for field, env, message in problems]
        super().__init__("invalid asgi_ws_stabilizer settings: " + "; ".join(lines))


class NotInstalledError(StabilizerError, RuntimeError):
    """The stabilizer handle was asked for on a scope the middleware never saw."""


class StateError(StabilizerError, RuntimeError):
    """An operation was attempted in a state that does not allow it."""


class BackendUnavailableError(StabilizerError, ConnectionError):
    """The backend (Redis) cannot answer now; ``hub.stats()["backend"]`` shows its state."""


class MemoryLimitExceededError(StabilizerError):
    """A write to ``user_data`` would pass a memory limit; nothing was stored.

    Attributes:
        limit: the limit in bytes.
        size: the bytes the write would have used.
    """

    def __init__(self, message: str, *, limit: int, size: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.size = size


class InvalidGroupError(StabilizerError, ValueError):
    """A group name that is empty, too long, or not a string."""


class InvalidClientIdError(StabilizerError, ValueError):
    """A client id that is empty, too long, or has characters other than URL-safe ones."""


class InvalidTokenError(StabilizerError):
    """A resume token that is malformed, forged or tampered with."""


class TokenExpiredError(InvalidTokenError):
    """A genuine resume token past its expiry."""


class TokenSpentError(InvalidTokenError):
    """A genuine resume token that was used before (tokens are single-use)."""


class ConnectionGoneError(StabilizerError, OSError):
    """A send on a WebSocket that is closed or whose peer has gone.

    Attributes:
        code: the close code of the connection, when known.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
