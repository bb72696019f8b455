"""WebSocket stabilization for ASGI apps: heartbeats, limits, admission and clean closes.

::

    from asgi_ws_stabilizer import StabilizerMiddleware
    app.add_middleware(StabilizerMiddleware)
"""

from __future__ import annotations

from .client_js import client_route
from .codes import CloseCode
from .config.settings import SettingsOverrides, StabilizerSettings
from .core.admission import Refusal
from .core.delivery import BroadcastResult, DeferredResult
from .core.drain import ShutdownReport
from .dependencies import get_connection, get_hub
from .errors import (
    BackendUnavailableError,
    ConnectionGoneError,
    InvalidClientIdError,
    InvalidGroupError,
    InvalidTokenError,
    MemoryLimitExceededError,
    NotInstalledError,
    SettingsError,
    StabilizerError,
    StateError,
    TokenExpiredError,
    TokenSpentError,
)
from .hub.hub import ConnectionHandle, Hub
from .middleware import StabilizerMiddleware
from .observe.metrics import metrics_route

__all__ = [
    "BackendUnavailableError",
    "BroadcastResult",
    "CloseCode",
    "ConnectionGoneError",
    "ConnectionHandle",
    "DeferredResult",
    "Hub",
    "InvalidClientIdError",
    "InvalidGroupError",
    "InvalidTokenError",
    "MemoryLimitExceededError",
    "NotInstalledError",
    "Refusal",
    "SettingsError",
    "SettingsOverrides",
    "ShutdownReport",
    "StabilizerError",
    "StabilizerMiddleware",
    "StabilizerSettings",
    "StateError",
    "TokenExpiredError",
    "TokenSpentError",
    "client_route",
    "get_connection",
    "get_hub",
    "metrics_route",
]

__version__ = "0.1.0"
