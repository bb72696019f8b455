"""The first demo: a Starlette echo whose browser page stays connected through cuts and restarts.

Run it from the repository root, with the ``.venv`` the README's setup creates::

    .venv/bin/python -m uvicorn examples.starlette_echo:app

and open http://127.0.0.1:8000/ (uvicorn's default port; ``--port 8001`` picks another).

The page uses the shipped reconnecting client (``/stabilizer.js``, served by ``client_route()``;
it opts in to sessions with ``_stabilizer=1``) and shows, live:

* the connection state: connecting, open, reconnecting (with the attempt and the delay before
  the next try), or closed;
* how many times it reconnected, and for each time whether the session was **resumed** (with the
  ``replayed`` and ``missed`` counts of the server's session frame) or a **new session** began;
* the server's ticker: a counter that a background task (started in the app's lifespan)
  broadcasts to every socket through the hub once a second, with the number of gaps seen in it;
* every line you type, marked ``queued`` (typed while not connected: the client keeps up to 100
  lines and sends them in order once it is back), ``sent``, then ``echoed`` when the server's echo
  arrived, or ``dropped`` when the offline buffer overflowed. Nothing is dropped silently.

Things to try:

* **Cut the connection** with the server still running: start
  ``.venv/bin/python -m examples.cut_proxy`` in a second terminal, open http://127.0.0.1:8001/
  (the proxy) instead, and press Enter there to cut every connection, or ``d`` Enter for a 5 s
  outage. The page reconnects by itself and says ``resumed, replayed N, missed 0``: the ticks sent
  while it was cut off arrive (marked "replayed" in the log, no gap in the ticker), and lines typed
  during the outage go out once it is back.
* **Stop the server** (Ctrl+C) **and start it again.** Ctrl+C drains: the page is told to come
  back within 2 s (``drain_spread``), then retries with backoff (500 ms doubling up to 20 s,
  randomised) until the server answers. Sessions live in the server process's memory, so the new
  process does not know the old one's: the page says ``reconnected (new session)`` (its greeting
  says why: ``invalid_token``, or ``session_unknown`` with ``WS_STABILIZER_SECRET_KEY`` set), the
  ticker starts again from 1 and nothing from before the restart is replayed. Lines typed while the
  server was down are still sent once it is back.

A limit to know: resumption replays what the *server* sent. It does not resend what the page
sent: a line written to a connection that dies before the server reads it is lost, and the page
shows it stuck at ``sent``, never ``echoed``.

``/ws`` greets each socket (saying whether its session was resumed, and why not), echoes every
text message and carries the ticks; ``/stats`` shows the hub's counters, and ``/metrics`` the
Prometheus metrics when the demo runs with ``WS_STABILIZER_ENABLE_METRICS=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import (
    ConnectionHandle,
    Hub,
    SettingsOverrides,
    StabilizerMiddleware,
    client_route,
    metrics_route,
)

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

TICK_INTERVAL = 1.0
"""Seconds between two ticks of the server's ticker."""

DEMO_SETTINGS: SettingsOverrides = {
    # One tab, not thousands: after Ctrl+C it is told to come back within 2 s (default 10 s).
    "drain_spread": 2.0,
}

PAGE = r"""<!doctype html>
<meta charset="utf-8"><title>asgi_ws_stabilizer demo</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; max-width: 56em; }
  #state { padding: 0 .4em; border-radius: .3em; background: #eee; }
  #state.open { background: #c6efc6; }
  #state.connecting, #state.reconnecting { background: #fde6a8; }
  #state.closed { background: #f5bcbc; }
  #offline { color: #9a5800; }
  #lines small { margin-left: .5em; }
  .queued { color: #9a5800; } .sent { color: #555; } .echoed { color: #176117; }
  .dropped, .refused { color: #b00020; }
  pre { border: 1px solid #ccc; padding: .5em; height: 16em; overflow: auto; }
</style>
<h1>A connection that comes back</h1>
<p>State: <b id="state" class="connecting">connecting</b> <span id="detail"></span></p>
<p>Reconnected <b id="reconnects">0</b> times: resumed <b id="resumes">0</b>,
  new session <b id="fresh">0</b>. Last: <span id="last">first connection</span></p>
<p>Server ticker: <b id="tick">-</b>; <span id="ticks">0</span> ticks received in this session,
  gaps: <b id="gaps">0</b></p>
<p><input id="msg" size="40" placeholder="type, then Enter" autofocus>
  <button id="send">send</button>
  <span id="offline" hidden>not connected: what you send is queued and goes out once the
  connection is back</span></p>
<ol id="lines"></ol>
<pre id="log"></pre>
<p>Try: stop the server (Ctrl+C) and start it again; or run
  <code>.venv/bin/python -m examples.cut_proxy</code>, open this page on port 8001 and press
  Enter there to cut the connection. <a href="/stats">/stats</a></p>
<script type="module">
import { StabilizedSocket } from "/stabilizer.js";

const $ = (id) => document.getElementById(id);
const logLines = [];
const log = (line) => {
  logLines.push(`${new Date().toLocaleTimeString()}  ${line}`);
  if (logLines.length > 200) logLines.shift();
  $("log").textContent = logLines.join("\n");
  $("log").scrollTop = $("log").scrollHeight;
};

// ws: for a page served over http, wss: over https; same host and port as the page.
const scheme = location.protocol === "https:" ? "wss:" : "ws:";
const socket = new StabilizedSocket(`${scheme}//${location.host}/ws`);
window.demo = { socket }; // to poke at from the browser's console

let opens = 0, resumes = 0, fresh = 0;
let connected = false; // whether the socket that closes had opened
let replayLeft = 0; // the next messages after a resume are the replay
let lastTick = null, ticks = 0, gaps = 0;
const lines = []; // what the user typed: {text, status, el}

function showState(detail = "") {
  $("state").textContent = socket.state;
  $("state").className = socket.state;
  $("detail").textContent = detail;
  $("offline").hidden = socket.state === "open" || socket.state === "closed";
  $("msg").disabled = $("send").disabled = socket.state === "closed";
}

function mark(line, status, label = status) {
  line.status = status;
  line.el.className = status;
  line.el.querySelector("small").textContent = label;
}

socket.on("open", ({ resumed }) => {
  opens += 1;
  connected = true;
  if (!resumed) { lastTick = null; ticks = 0; } // a new session: its own ticker count
  if (opens > 1) {
    $("reconnects").textContent = opens - 1;
    if (!resumed) {
      fresh += 1;
      $("fresh").textContent = fresh;
      $("last").textContent = "reconnected (new session)";
      log("reconnected with a new session: nothing from the old one is replayed");
    }
  }
  // The client flushed its offline buffer, in order, before it said "open".
  for (const line of lines) if (line.status === "queued") mark(line, "sent");
  showState(`session ${socket.sessionId}`);
});

socket.on("resumed", ({ replayed, missed }) => {
  resumes += 1;
  replayLeft = replayed;
  $("resumes").textContent = resumes;
  $("last").textContent = `resumed, replayed ${replayed}, missed ${missed}`;
  log(`resumed the session: ${replayed} replayed, ${missed} missed`);
});

socket.on("message", ({ data }) => {
  const replay = replayLeft > 0;
  if (replay) replayLeft -= 1;
  if (typeof data !== "string") return;
  const tick = /^tick (\d+)$/.exec(data);
  if (tick) {
    const n = Number(tick[1]);
    if (lastTick !== null && n !== lastTick + 1) {
      gaps += 1;
      log(`gap in the ticker: ${lastTick} then ${n}`);
    }
    lastTick = n;
    ticks += 1;
    $("tick").textContent = n;
    $("ticks").textContent = ticks;
    $("gaps").textContent = gaps;
    if (replay) log(`replayed: ${data}`);
    return;
  }
  if (data.startsWith("echo: ")) {
    const line = lines.find((l) => l.status === "sent" && l.text === data.slice(6));
    if (line) mark(line, "echoed");
  }
  log(replay ? `replayed: ${data}` : data);
});

socket.on("close", ({ code, reason, willReconnect }) => {
  const why = reason ? ` (${reason})` : "";
  const what = connected ? "closed" : "could not connect";
  log(`${what}: code ${code}${why}${willReconnect ? "" : "; for good, reload the page"}`);
  connected = false;
  showState();
});

socket.on("reconnecting", ({ attempt, delay }) => {
  showState(`attempt ${attempt}, next try in ${(delay / 1000).toFixed(1)} s`);
});

socket.on("drop", ({ data }) => { // the offline buffer was full: its oldest line is gone
  const line = lines.find((l) => l.status === "queued" && l.text === data);
  if (line) mark(line, "dropped", "dropped: offline buffer full");
});

function send() {
  const text = $("msg").value;
  if (!text) return;
  $("msg").value = "";
  const ok = socket.send(text);
  // Not sent at once (not connected): it waits in the client's offline buffer.
  const status = !ok ? "refused" : socket.buffered > 0 ? "queued" : "sent";
  const el = document.createElement("li");
  el.append(text, document.createElement("small"));
  $("lines").append(el);
  const line = { text, status, el };
  lines.push(line);
  mark(line, status, ok ? status : "not sent: the socket is closed or the line too big");
  if (lines.length > 50) lines.shift().el.remove();
}
$("send").onclick = send;
$("msg").onkeydown = (e) => { if (e.key === "Enter") send(); };
showState();
</script>
"""


async def index(request: Request) -> HTMLResponse:
    """The browser page."""
    return HTMLResponse(PAGE)


async def echo(websocket: WebSocket) -> None:
    """Greet, then echo text until the client leaves.

    No ``try``/``except WebSocketDisconnect`` and no ``close()`` are needed: ``iter_text`` ends
    on a disconnect, and the middleware sends the close (1000) when the handler returns.
    """
    stab: ConnectionHandle = websocket.state.stabilizer
    await websocket.accept()
    if stab.resumed:
        await websocket.send_text(f"hello again {stab.client_id}: session resumed")
    elif stab.resume_reason is not None:
        await websocket.send_text(
            f"hello {stab.client_id}: new session (the old one could not be resumed: "
            f"{stab.resume_reason})"
        )
    else:
        await websocket.send_text(f"hello {stab.client_id}: new session")
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo: {text}")


async def stats(request: Request) -> JSONResponse:
    """The hub's counters for this process."""
    hub: Hub = request.state.stabilizer
    return JSONResponse(hub.stats())


async def tick_forever(hub: Hub) -> None:
    """Broadcast ``tick 1``, ``tick 2``... every ``TICK_INTERVAL`` until cancelled (at shutdown).

    A broadcast also reaches the sessions whose client is away: they keep the ticks for the
    replay when it resumes.
    """
    for n in itertools.count(1):
        await asyncio.sleep(TICK_INTERVAL)
        await hub.broadcast(f"tick {n}")


def create_app(**settings: Unpack[SettingsOverrides]) -> Starlette:
    """The demo app; ``settings`` override ``DEMO_SETTINGS`` (the tests shorten some)."""
    merged: SettingsOverrides = {**DEMO_SETTINGS, **settings}
    hub = Hub(**merged)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(tick_forever(hub))
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/stats", stats),
            WebSocketRoute("/ws", echo),
            client_route(),  # GET /stabilizer.js, the reconnecting client
            metrics_route(),  # GET /metrics (the asgi_ws_* series with enable_metrics on)
        ],
        lifespan=lifespan,
    )
    app.add_middleware(StabilizerMiddleware, hub=hub)
    return app


app = create_app()
