"""WebSocket stabilization for ASGI apps: heartbeats, limits, admission and clean closes.

::

    from asgi_ws_stabilizer import StabilizerMiddleware
    app.add_middleware(StabilizerMiddleware)
"""

from __future__ import annotations

from .admission import Refusal
from .codes import CloseCode
from .dependencies import get_connection, get_hub
from .errors import (
    ConnectionGoneError,
    InvalidGroupError,
    MemoryLimitExceededError,
    NotInstalledError,
    SettingsError,
    StabilizerError,
    StateError,
)
from .fanout import BroadcastResult
from .handle import ConnectionHandle
from .hub import Hub
from .middleware import StabilizerMiddleware
from .settings import StabilizerSettings

__all__ = [
    "BroadcastResult",
    "CloseCode",
    "ConnectionGoneError",
    "ConnectionHandle",
    "Hub",
    "InvalidGroupError",
    "MemoryLimitExceededError",
    "NotInstalledError",
    "Refusal",
    "SettingsError",
    "StabilizerError",
    "StabilizerMiddleware",
    "StabilizerSettings",
    "StateError",
    "get_connection",
    "get_hub",
]

__version__ = "0.1.0"
