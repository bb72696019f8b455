"""Apps configured only through WS_STABILIZER_* variables, for the subprocess tests.

``app`` is a plain Starlette app, ``fastapi_app`` the same routes on FastAPI. Both block their
event loop on request, to test loop stalls: a ``block N`` echo message, or ``GET /block?seconds=N``
(an ``async def`` route that calls ``time.sleep``).
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import StabilizerMiddleware


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        if text.startswith("block "):
            time.sleep(float(text.split()[1]))  # noqa: ASYNC251  (blocks the loop on purpose)
        await websocket.send_text(text)


async def flood(websocket: WebSocket) -> None:
    """Sends 64 KiB frames as fast as they go, never receiving (a send-only handler)."""
    await websocket.accept()
    chunk = "x" * 65536
    while True:
        await websocket.send_text(chunk)


async def block(request: Request) -> PlainTextResponse:
    seconds = float(request.query_params.get("seconds", "1"))
    time.sleep(seconds)  # noqa: ASYNC251  (blocks the loop on purpose)
    return PlainTextResponse(f"blocked {seconds}")


app = Starlette(
    routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/flood", flood), Route("/block", block)]
)
app.add_middleware(StabilizerMiddleware)

fastapi_app = FastAPI()
fastapi_app.add_api_websocket_route("/echo", echo)
fastapi_app.add_api_websocket_route("/flood", flood)
fastapi_app.add_api_route("/block", block, methods=["GET"])
fastapi_app.add_middleware(StabilizerMiddleware)
