"""A FastAPI chat with rooms: groups, user data within memory limits, hooks and hub sends.

Run it from the repository root::

    uvicorn examples.chat:app

Open http://127.0.0.1:8000/ in two browser tabs. Each tab picks a name and a room; messages go to
the room through ``publish``; joins and leaves are announced by the hooks; ``/stats`` and
``/memory`` show the hub's counters and memory accounting.
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
<button id="join">join</button> <span id="state">not connected</span></p>
<pre id="log" style="height:60vh;overflow:auto;border:1px solid #ccc"></pre>
<input id="text" size="60" placeholder="say something"> <button id="send">send</button>
<script>
let ws;
const log = (line) => { const el = document.getElementById("log");
  el.textContent += line + "\\n"; el.scrollTop = el.scrollHeight; };
document.getElementById("join").onclick = () => {
  if (ws) ws.close();
  const q = new URLSearchParams({name: document.getElementById("name").value,
                                 room: document.getElementById("room").value});
  ws = new WebSocket(`ws://${location.host}/ws?${q}`);
  ws.onopen = () => document.getElementById("state").textContent = "connected";
  ws.onclose = (e) => document.getElementById("state").textContent = `closed ${e.code} ${e.reason}`;
  ws.onmessage = (e) => {
    if (e.data === "ping") { ws.send("pong"); return; }  // the heartbeat
    const m = JSON.parse(e.data);
    log(m.system ? `* ${m.system}` : `${m.from}: ${m.text}`);
  };
};
document.getElementById("send").onclick = () => {
  const el = document.getElementById("text"); ws.send(el.value); el.value = "";
};
</script>
"""


@app.get("/")
async def page() -> HTMLResponse:
    """A small page to try the chat in a browser."""
    return HTMLResponse(PAGE)
