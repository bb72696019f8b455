"""The JavaScript client in a real browser: headless Chromium, driven over the DevTools
protocol (with the websockets client we already have), against a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_ws_stabilizer import Hub, StabilizerMiddleware, client_route

from ..servers import CutProxy, serve
from ..timing import t
from .devtools import chromium, needs_chromium, open_page, websocket_failure

pytestmark = needs_chromium

TOTAL = 200
PAGE = """<!doctype html><meta charset="utf-8"><title>resume</title><link rel="icon" href="data:,">
<pre id="log"></pre><b id="state"></b>
<script type="module">
import { StabilizedSocket } from "/stabilizer.js";
window.received = []; window.resumes = []; window.states = [];
const socket = new StabilizedSocket(`ws://127.0.0.1:${PROXY}/listen`, {minDelay: 100});
for (const s of ["open", "close", "reconnecting"]) {
  socket.on(s, () => { window.states.push(s); document.getElementById("state").textContent = s; });
}
socket.on("close", () => { window.closedAt = performance.now(); });
socket.on("resumed", (d) => {
  window.resumes.push({...d, afterMs: Math.round(performance.now() - window.closedAt)});
});
socket.on("message", (d) => {
  window.received.push(d.data);
  document.getElementById("log").textContent += d.data + "\\n";
});
</script>"""


def make_app(hub: Hub, ports: dict[str, int]) -> Any:
    """The page (its WebSocket goes through the proxy at ``ports["proxy"]``), the client
    module and a listening handler."""

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE.replace("${PROXY}", str(ports["proxy"])))

    async def listen(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    app = Starlette(routes=[Route("/", page), client_route(), WebSocketRoute("/listen", listen)])
    app.add_middleware(StabilizerMiddleware, hub=hub)
    return app


async def test_page_resumes_after_an_abnormal_close() -> None:
    """The page's socket is cut; it reconnects, resumes and shows every message once, in order."""
    # The page (server port) talks to the proxy (another port): a cross-origin socket.
    hub = Hub(heartbeat_interval=None, secret_key="b" * 32, allowed_origins=["*"])
    loop = asyncio.get_running_loop()
    ports: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(make_app(hub, ports), "uvicorn-sansio"))
        port = int(url.rsplit(":", 1)[1])
        proxy = await stack.enter_async_context(CutProxy(port))
        ports["proxy"] = proxy.port
        devtools = await stack.enter_async_context(chromium())
        page = await stack.enter_async_context(open_page(devtools, f"http://127.0.0.1:{port}/"))
        deadline = loop.time() + t(15)
        while hub.connection_count != 1:
            assert loop.time() < deadline, "the page never connected"
            await asyncio.sleep(0.05)
        for i in range(TOTAL):
            await hub.broadcast(f"{i:04d}")
            if i == TOTAL // 3:
                proxy.cut()  # no close frame: the browser sees 1006
            await asyncio.sleep(0.005)
        while True:
            received = await page.evaluate("window.received.length")
            if received >= TOTAL or loop.time() > deadline + t(10):
                break
            await asyncio.sleep(0.1)
        messages = await page.evaluate("window.received")
        resumes = await page.evaluate("window.resumes")
        states = await page.evaluate("window.states")
        shown = await page.evaluate("document.getElementById('log').textContent")
        page.assert_no_errors(allow=websocket_failure)
    assert messages == [f"{i:04d}" for i in range(TOTAL)], (states, resumes)
    assert shown.split() == messages
    assert len(resumes) == 1
    assert resumes[0]["missed"] == 0
    assert resumes[0]["afterMs"] >= 0
    assert resumes[0]["replayed"] > 0
    assert "reconnecting" in states
    print(f"\n[chromium] resumed after the cut: {resumes[0]}; states {states}")
