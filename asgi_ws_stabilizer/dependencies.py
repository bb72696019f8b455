"""Helpers that fetch the handle or the hub from a request, for FastAPI's ``Depends`` or by hand.

::

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, stab: ConnectionHandle = Depends(get_connection)): ...

    @app.get("/stats")
    async def stats(hub: Hub = Depends(get_hub)): return hub.stats()
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

from .errors import NotInstalledError
from .hub.hub import ConnectionHandle, Hub
from .middleware import STATE_KEY

_HINT = (
    "StabilizerMiddleware is not installed on this app: "
    "add app.add_middleware(StabilizerMiddleware)"
)


def get_connection(websocket: WebSocket) -> ConnectionHandle:
    """The stabilizer handle of this WebSocket.

    Raises:
        NotInstalledError: the middleware did not see this connection.
    """
    handle = (websocket.scope.get("state") or {}).get(STATE_KEY)
    if not isinstance(handle, ConnectionHandle):
        raise NotInstalledError(_HINT)
    return handle


def get_hub(connection: HTTPConnection) -> Hub:
    """The hub, from an HTTP request or a WebSocket.

    Raises:
        NotInstalledError: the middleware did not see this request.
    """
    value = (connection.scope.get("state") or {}).get(STATE_KEY)
    if isinstance(value, ConnectionHandle):
        return value.hub
    if not isinstance(value, Hub):
        raise NotInstalledError(_HINT)
    return value
