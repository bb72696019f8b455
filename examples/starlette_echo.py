"""A plain Starlette echo app behind ``StabilizerMiddleware``.

Run it from the repository root, then open http://127.0.0.1:8000/ in a browser::

    uvicorn examples.starlette_echo:app

``/ws`` greets each socket with its client id (pass ``?client_id=...`` to choose one) and echoes
every text message; ``/stats`` shows the hub's counters; ``/`` is a small page that connects to
``/ws``, answers the heartbeat ``ping`` with ``pong`` and shows what comes back.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import ConnectionHandle, Hub, StabilizerMiddleware

PAGE = """<!doctype html>
<meta charset="utf-8"><title>asgi_ws_stabilizer echo</title>
<input id="msg" placeholder="type, then Enter" autofocus> <a href="/stats">stats</a>
<pre id="log"></pre>
<script>
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onmessage = (e) => {
  if (e.data === "ping") { ws.send("pong"); log("(ping answered)"); } else { log(e.data); }
};
ws.onclose = (e) => log("closed: code " + e.code + " " + e.reason);
document.getElementById("msg").onkeydown = (e) => {
  if (e.key === "Enter" && e.target.value) { ws.send(e.target.value); e.target.value = ""; }
};
</script>
"""


async def index(request: Request) -> HTMLResponse:
    """The browser page."""
    return HTMLResponse(PAGE)


async def echo(websocket: WebSocket) -> None:
    """Greet with the client id, then echo text until the client leaves.

    No ``try``/``except WebSocketDisconnect`` and no ``close()`` are needed: ``iter_text`` ends
    on a disconnect, and the middleware sends the close (1000) when the handler returns.
    """
    stab: ConnectionHandle = websocket.state.stabilizer
    await websocket.accept()
    await websocket.send_text(f"hello {stab.client_id}")
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")


async def stats(request: Request) -> JSONResponse:
    """The hub's counters for this process."""
    hub: Hub = request.state.stabilizer
    return JSONResponse(hub.stats())


app = Starlette(
    routes=[
        Route("/", index),
        Route("/stats", stats),
        WebSocketRoute("/ws", echo),
    ]
)
app.add_middleware(StabilizerMiddleware)
