"""The app of the metrics tests, configured by ``WS_STABILIZER_*`` variables (metrics on).

- ``/ws`` and ``/ws/{anything}``: accepts, sends ``{"pid": <worker pid>}``, then answers each
  text: ``raise`` makes the handler raise (closed 1011), ``close N`` makes the app close with code
  ``N``, anything else is echoed back.
- ``GET /metrics``: ``metrics_route()`` (the multiprocess collector when
  ``PROMETHEUS_MULTIPROC_DIR`` is set).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import StabilizerMiddleware, metrics_route


async def talk(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"pid": os.getpid()})
    async for text in websocket.iter_text():
        if text == "raise":
            raise RuntimeError("the client asked for it")
        if text.startswith("close "):
            await websocket.close(int(text.removeprefix("close ")))
            return
        await websocket.send_text(text)


app = Starlette(
    routes=[WebSocketRoute("/ws", talk), WebSocketRoute("/ws/{rest:path}", talk), metrics_route()]
)
app.add_middleware(StabilizerMiddleware)
