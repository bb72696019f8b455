"""fastapi-websocket-stabilizer's Quick Start and usage patterns, ported to asgi_ws_stabilizer.

One FastAPI app, one route per pattern of the old README. Comments starting ``old:`` show the
code each line replaces. Run it from the repository root (it serves http://127.0.0.1:8000)::

    .venv/bin/python -m uvicorn examples.migrate_from_fastapi_websocket_stabilizer:app

Routes:

- ``WS /ws/{client_id}``: the Quick Start chat. Every text goes to everyone as
  ``{"user": client_id, "message": text}``.
- ``POST /broadcast?message=...&exclude=<client_id>``: Pattern 1, a message to all (but one).
- ``POST /direct/{client_id}?message=...``: Pattern 2, a message to one client.
- Pattern 3 (reconnection) needs no route: a client that connects to ``/ws/{client_id}`` with
  ``?_stabilizer=1`` (the JavaScript client does) gets its session back after a drop, missed
  messages included.
- ``GET /stats``: Pattern 4.
- ``WS /profile/{client_id}?username=...&room=...``: Pattern 5, per-connection user data, with the
  room as a real group.

Clients written for the old library keep working: the heartbeat sends them the JSON text
``{"type":"ping"}`` (the old one also carried a ``timestamp``), and the ``pong`` they answer is
consumed by the middleware.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, WebSocket, status

from asgi_ws_stabilizer import (
    ConnectionHandle,
    Hub,
    InvalidClientIdError,
    SettingsOverrides,
    StabilizerMiddleware,
    get_connection,
)

OLD_PING = '{"type":"ping"}'
"""The heartbeat text old clients look for (``{"type": "ping", ...}`` as JSON)."""

SETTINGS: SettingsOverrides = {
    # old: WebSocketConfig(heartbeat_interval=30.0, heartbeat_timeout=60.0, max_connections=100)
    # The names are the same; so are WS_STABILIZER_HEARTBEAT_INTERVAL etc. in the environment.
    "heartbeat_interval": 30.0,
    # Counted from the ping: a silent client is closed (4408) 30 + 60 s after its last frame.
    # (The old library dropped it after min(interval, timeout), with close code 1000.)
    "heartbeat_timeout": 60.0,
    # Over it, the handshake is refused with HTTP 503 before the handler runs (old: the handler
    # raised ConnectionLimitExceededError after accept, and the client saw 1006).
    "max_connections": 100,
    # Durations take a timedelta as well as seconds.
    "reconnect_token_ttl": timedelta(hours=1),
    # old: heartbeat_type="ping", which sent {"type":"ping","timestamp":...} to every client.
    # Here only clients that opted in get the text heartbeat unless heartbeat_clients="all",
    # and its texts are settings. Old clients answer "pong", the default pong_message; if
    # yours answer with JSON, set "pong_message": '{"type":"pong"}' (the exact text they send).
    "heartbeat_clients": "all",
    "ping_message": OLD_PING,
}

Stabilizer = Annotated[ConnectionHandle, Depends(get_connection)]
"""The socket's handle; ``websocket.state.stabilizer`` is the same object."""


def create_app(hub: Hub) -> FastAPI:
    """The ported app, served through ``hub`` (old: ``WebSocketConnectionManager(config)``)."""
    # old: a lifespan that awaited ws_manager.start() and ws_manager.graceful_shutdown().
    # The middleware starts the hub with the app's lifespan, and on SIGTERM/SIGINT it drains
    # before the server closes anything: clients get 1012 "server restarting" (opted-in ones a
    # retry hint first). A drain by hand, e.g. from a pre-stop hook: `await hub.drain()`, which
    # returns a ShutdownReport (closed, failed, timed_out, notified, duration).
    app = FastAPI()
    app.add_middleware(StabilizerMiddleware, hub=hub)

    @app.websocket("/ws/{client_id}")
    async def websocket_endpoint(websocket: WebSocket, client_id: str, stab: Stabilizer) -> None:
        """Quick Start: a chat where every message goes to everyone."""
        # old: await ws_manager.connect(client_id, websocket) after accept(). Here the socket is
        # registered before the handler runs; identify() files it under the path's id, for
        # hub.send_to, hub.close, groups, sessions and max_connections_per_client. A second
        # socket with the same id is kept next to the first (old: it closed the first); use
        # max_connections_per_client=1 to refuse it instead.
        try:
            await stab.identify(client_id)
        except InvalidClientIdError:
            # 1-128 of A-Z a-z 0-9 . _ ~ : @ -; closing before accept refuses with HTTP 403.
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        await websocket.accept()
        # Ends when the client leaves: no try/except WebSocketDisconnect, no disconnect(), and
        # the middleware closes with 1000 when the handler returns (1011 if it raises).
        async for data in websocket.iter_text():
            # old: if data == "pong": await ws_manager.handle_pong(client_id); continue
            # The middleware consumes the pong: it never gets here.
            # old: await ws_manager.broadcast(json.dumps({"user": client_id, "message": data}))
            # A dict is sent as compact JSON text, encoded once for every recipient.
            await hub.broadcast({"user": client_id, "message": data})

    @app.post("/broadcast")
    async def broadcast(
        message: str = "System message", exclude: str | None = None
    ) -> dict[str, Any]:
        """Pattern 1: a message to every client, or to all but ``exclude`` (a client id)."""
        # old: await ws_manager.broadcast("System message")
        # old: await ws_manager.broadcast(json.dumps({...}), exclude_client=sender_id)
        result = await hub.broadcast(message, exclude=exclude)
        # old BroadcastResult: total, succeeded, failed, errors; BroadcastFailedError when all
        # failed. Here: targeted, queued, dropped, closed; nothing waits for a slow client, and
        # nothing raises.
        return dataclasses.asdict(result)

    @app.post("/direct/{client_id}")
    async def direct(client_id: str, message: str = "Direct message") -> dict[str, int]:
        """Pattern 2: a message to every socket of one client id."""
        # old: success = await ws_manager.send_to_client(client_id, "Direct message")
        # (FastAPI docs' ConnectionManager: send_personal_message(message, websocket))
        sockets = await hub.send_to(client_id, message)
        if not sockets:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{client_id} is not connected")
        return {"sockets": sockets}

    # Pattern 3 (reconnection): no code. The old POST /reconnect-token/{client_id} minted a
    # token for anyone who asked, and the token only brought the client id back. Here a client
    # that connects with ?_stabilizer=1 gets a signed token in its first frame; reconnecting
    # with it (and the count of messages it got) restores its client id, user_data and groups,
    # and replays what it missed (see the README's Resumption section).

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Pattern 4: statistics and monitoring."""
        return {
            "active_connections": hub.connection_count,  # old: get_connection_count()
            "client_ids": hub.client_ids(),  # old: get_active_connections()
            "memory": hub.memory_usage(),  # old: get_memory_usage()
            "counters": hub.stats(),  # old: enable_metrics, never built
        }

    @app.websocket("/profile/{client_id}")
    async def profile(websocket: WebSocket, client_id: str, stab: Stabilizer) -> None:
        """Pattern 5: per-connection user data; the room is a group that messages reach."""
        try:
            await stab.identify(client_id)
        except InvalidClientIdError:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        await websocket.accept()
        # old: await ws_manager.set_user_data(client_id, "username", "Alice")
        # user_data is a dict measured by deep size; max_memory_per_connection applies to each
        # write (MemoryLimitExceededError, as before).
        stab.user_data["username"] = websocket.query_params.get("username", "Alice")
        # old: await ws_manager.set_user_data(client_id, "room", "general"); nothing used it.
        room = websocket.query_params.get("room", "general")
        await stab.join(room)  # hub.publish(room, ...) reaches every member
        # old: username = await ws_manager.get_user_data(client_id, "username")
        username = stab.user_data["username"]
        await stab.publish(room, f"{username} joined")
        async for text in websocket.iter_text():
            await stab.publish(room, {"user": username, "message": text})

    return app


hub = Hub(**SETTINGS)  # settings not given here come from WS_STABILIZER_* variables
app = create_app(hub)
