"""A FastAPI app that reaches the stabilizer through ``Depends`` (no browser page).

Run it from the repository root, with the ``.venv`` the README's setup creates::

    .venv/bin/python -m uvicorn examples.fastapi_app:app

It serves on port 8000 (uvicorn's default; ``--port 8001`` picks another). Connect a WebSocket
client to ``ws://127.0.0.1:8000/ws?name=alice&client_id=alice-laptop``, for instance with the
``websockets`` client the dev extras install::

    .venv/bin/python -m websockets "ws://127.0.0.1:8000/ws?name=alice&client_id=alice-laptop"

Each message you send comes back with the name kept in ``user_data``, the number of sockets
online and the last heartbeat round trip (``rtt_s``). A plain client like this one is kept alive
by uvicorn's protocol pings, which client libraries answer by themselves. A client that opts in
(add ``&_stabilizer=1``: it then gets a session frame first) also gets the middleware's text
heartbeat: the text ``ping`` after 15 s without traffic; answer ``pong`` within 10 s or the socket
is closed with 4408. ``GET /stats`` (http://127.0.0.1:8000/stats) shows the connections, client
ids and counters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket

from asgi_ws_stabilizer import (
    ConnectionHandle,
    Hub,
    StabilizerMiddleware,
    get_connection,
    get_hub,
)

app = FastAPI()
# Keyword arguments override WS_STABILIZER_* environment variables.
app.add_middleware(StabilizerMiddleware, heartbeat_interval=15, max_connections_per_ip=20)

Stabilizer = Annotated[ConnectionHandle, Depends(get_connection)]
CurrentHub = Annotated[Hub, Depends(get_hub)]


@app.websocket("/ws")
async def chat(websocket: WebSocket, stab: Stabilizer) -> None:
    """Remember the name in ``user_data``, then answer every message with some live figures."""
    stab.user_data["name"] = websocket.query_params.get("name", "anonymous")
    await websocket.accept()
    await websocket.send_json(
        {
            "hello": stab.user_data["name"],
            "client_id": stab.client_id,
            "connection_id": stab.connection_id,
            "online": stab.hub.connection_count,
        }
    )
    async for text in websocket.iter_text():
        await websocket.send_json(
            {
                "from": stab.user_data["name"],
                "text": text,
                "online": stab.hub.connection_count,
                "rtt_s": stab.rtt,
            }
        )


@app.get("/stats")
async def stats(hub: CurrentHub) -> dict[str, Any]:
    """Connections, client ids and counters of this process."""
    return {
        "connection_count": hub.connection_count,
        "client_ids": hub.client_ids(),
        "stats": hub.stats(),
    }
