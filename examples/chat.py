"""A FastAPI chat with rooms: groups, user data within memory limits, hooks and hub sends.

Run it from the repository root::

    uvicorn examples.chat:app

Open http://127.0.0.1:8000/ in two browser tabs. Each tab picks a name and a room; messages go to
the room through ``publish``; joins and leaves are announced by the hooks; ``/stats`` and
``/memory`` show the hub's counters and memory accounting. The page uses the shipped JavaScript
client (``/stabilizer.js``): cut the network (or restart the server with
``WS_STABILIZER_SECRET_KEY`` set) and it reconnects, resumes and replays what it missed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from asgi_ws_stabilizer import (
    ConnectionHandle,
    Hub,
    MemoryLimitExceededError,
    StabilizerMiddleware,
    client_route,
    get_connection,
)


async def announce_leave(handle: ConnectionHandle, code: int, reason: str, closed_by: str) -> None:
    """Tell the rooms this socket was in that its user left (the on_disconnect hook)."""
    name = handle.user_data.get("name", "someone")
    for room in handle.user_data.get("rooms", []):
        await handle.hub.publish(room, {"system": f"{name} left", "code": code})


hub = Hub(
    on_disconnect=announce_leave,
    max_memory_per_connection=64 * 1024,  # user_data per socket
    max_total_memory=256 * 1024 * 1024,  # user data + outboxes + inboxes, all sockets
    max_send_queue=256 * 1024,  # a reader that falls this far behind is closed 1013
    rate_limit=20,  # messages per second per socket; over it: 4429
    rate_limit_burst=40,
)
app = FastAPI()
app.add_middleware(StabilizerMiddleware, hub=hub)
app.router.routes.append(client_route())  # GET /stabilizer.js, the reconnecting client

Stabilizer = Annotated[ConnectionHandle, Depends(get_connection)]


@app.websocket("/ws")
async def chat(websocket: WebSocket, stab: Stabilizer) -> None:
    """``/ws?name=alice&room=lobby``: join the room, then relay every message to it."""
    name = websocket.query_params.get("name", "anonymous")[:40]
    room = websocket.query_params.get("room", "lobby")[:40] or "lobby"
    stab.user_data["name"] = name
    stab.user_data["rooms"] = [room]
    await websocket.accept()
    await stab.join(room)
    await stab.publish(room, {"system": f"{name} joined", "members": stab.hub.group_size(room)})
    async for text in websocket.iter_text():
        if text.startswith("/note "):
            try:  # per-connection data is accounted by its deep size
                stab.user_data.setdefault("notes", [])
                stab.user_data["notes"] = [*stab.user_data["notes"], text[6:]]
            except MemoryLimitExceededError as exc:
                await websocket.send_json({"system": f"notes full ({exc.limit} bytes)"})
            continue
        await stab.publish(room, {"from": name, "text": text})


@app.get("/stats")
async def stats() -> dict[str, Any]:
    """Counters, and who is in which room."""
    return {
        "stats": hub.stats(),
        "rooms": {room: hub.group_members(room) for room in hub.groups()},
    }


@app.get("/memory")
async def memory() -> dict[str, Any]:
    """Bytes held by kind and the largest connections."""
    return hub.memory_usage(top=5)


@app.post("/announce")
async def announce(text: str) -> dict[str, Any]:
    """Send a line to every socket (a hub send from outside any socket)."""
    return vars(await hub.broadcast({"system": text}))


PAGE = """<!doctype html>
<meta charset="utf-8"><title>asgi_ws_stabilizer chat</title>
<p><input id="name" placeholder="name" value="guest"> <input id="room" value="lobby">
<button id="join">join</button> state: <b id="state">not connected</b>
<span id="resume"></span></p>
<pre id="log" style="height:60vh;overflow:auto;border:1px solid #ccc"></pre>
<input id="text" size="60" placeholder="say something"> <button id="send">send</button>
<script type="module">
import { StabilizedSocket } from "/stabilizer.js";
let socket;
const $ = (id) => document.getElementById(id);
const log = (line) => { $("log").textContent += line + "\n"; $("log").scrollTop = 1e9; };
$("join").onclick = () => {
  if (socket) socket.close();
  const q = new URLSearchParams({ name: $("name").value, room: $("room").value });
  // Answers the heartbeat, reconnects with backoff, resumes with its token and count,
  // and keeps what you send while offline.
  socket = new StabilizedSocket(`ws://${location.host}/ws?${q}`);
  for (const state of ["open", "reconnecting", "close"]) {
    socket.on(state, () => { $("state").textContent = socket.state; });
  }
  socket.on("resumed", (d) => {
    $("resume").textContent = `resumed: ${d.replayed} replayed, ${d.missed} missed`;
  });
  socket.on("message", (d) => {
    const m = JSON.parse(d.data);
    log(m.system ? `* ${m.system}` : `${m.from}: ${m.text}`);
  });
};
$("send").onclick = () => { socket.send($("text").value); $("text").value = ""; };
</script>
"""


@app.get("/")
async def page() -> HTMLResponse:
    """A small page to try the chat in a browser."""
    return HTMLResponse(PAGE)
