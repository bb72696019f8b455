"""An app configured only through WS_STABILIZER_* variables, for the subprocess tests."""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import StabilizerMiddleware


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        if text.startswith("block "):
            time.sleep(float(text.split()[1]))  # noqa: ASYNC251  (blocks the loop on purpose)
        await websocket.send_text(text)


app = Starlette(routes=[WebSocketRoute("/echo", echo)])
app.add_middleware(StabilizerMiddleware)
