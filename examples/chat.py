"""A FastAPI chat with rooms: groups, user data within memory limits, hooks and hub sends.

Run it from the repository root, with the ``.venv`` the README's setup creates::

    .venv/bin/python -m uvicorn examples.chat:app

and open http://127.0.0.1:8000/ (uvicorn's default port; ``--port 8001`` picks another) in two
browser tabs (``/?name=alice`` and ``/?name=bob`` preset the names). Each tab joins a room at
once; messages go to the room through ``publish``; joins and leaves are announced; ``/stats`` and
``/memory`` show the hub's counters and memory accounting, and ``POST /announce?text=...`` sends a
line to everyone.

The page uses the shipped JavaScript client (``/stabilizer.js``), which opts in to sessions,
answers the heartbeat, reconnects with backoff and queues what you send while it is offline
(the page marks such lines "queued"). What survives what, today:

* **A cut connection, same server process** (lost network, a laptop waking up; try it with
  ``.venv/bin/python -m examples.cut_proxy`` and the page on port 8001): the tab resumes its
  session within ``session_ttl`` (30 s here). It keeps its room without rejoining and gets every
  message it missed, replayed once and in order; the page says "resumed: N replayed, 0 missed".
* **A server restart, in-memory backend** (the default): sessions live in the server process's
  memory, so the new process does not know them, even with ``WS_STABILIZER_SECRET_KEY`` set (the
  old token is then valid, but the session is ``session_unknown``). The tab reconnects by itself,
  gets a fresh session, rejoins its room (the room sees "joined" again) and the page says
  "reconnected (new session)". Messages sent while the server was down were never sent, and
  nothing from before the restart is replayed. Lines typed in the tab while the server was down
  are sent once it is back.
* **A restart or a killed process, Redis backend** (``WS_STABILIZER_BACKEND_URL=redis://...``
  and one ``WS_STABILIZER_SECRET_KEY`` for every process; see the README's "Many workers"): the
  session lives in Redis, so the tab resumes on the restarted process or on any other that shares
  the Redis, with every message sent to its room meanwhile replayed once and in order, from
  whichever process sent it.

Joins and leaves are announced without the noise of reconnects: a tab that leaves for good
(closes, navigates away or joins another room: close code 1000 or 1001 from the client) is
announced as "left" at once. A socket that merely dropped is not announced: if its session
resumes, nobody hears of it (no "left", no second "joined", and its own replay holds no notice
about itself); if it has not resumed within ``session_ttl``, when the session can no longer be
resumed, the room hears "left". A socket replaced by its own session's newer one (4409) is not
announced either.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from asgi_ws_stabilizer import (
    BackendUnavailableError,
    ConnectionHandle,
    Hub,
    MemoryLimitExceededError,
    SettingsOverrides,
    StabilizerMiddleware,
    client_route,
    get_connection,
)

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

CHAT_SETTINGS: SettingsOverrides = {
    "max_memory_per_connection": 64 * 1024,  # user_data per socket
    "max_total_memory": 256 * 1024 * 1024,  # user data + outboxes + inboxes, all sockets
    "max_send_queue": 256 * 1024,  # a reader that falls this far behind is closed 1013
    "rate_limit": 20,  # messages per second per socket; over it: 4429
    "rate_limit_burst": 40,
    "session_ttl": 30.0,  # a dropped tab may resume this long; then it is announced as left
}

DELIBERATE_CLOSES = frozenset({1000, 1001})
"""Close codes of a client that leaves for good (the JavaScript client does not reconnect
after 1000; a browser closing or leaving a page sends 1001)."""

Stabilizer = Annotated[ConnectionHandle, Depends(get_connection)]


class Presence:
    """Announces joins and leaves, staying silent about sockets that resume their session.

    ``serving`` maps each session to the socket serving it now; a leave is announced only for
    the socket that still serves its session, and only once the session can no longer resume.
    """

    def __init__(self) -> None:
        self.serving: dict[str, str] = {}
        """Session id -> connection id of the socket that serves it now."""
        self.pending: dict[str, asyncio.Task[None]] = {}
        """Session id -> the delayed "left" of a session whose socket dropped."""

    async def arrived(self, stab: ConnectionHandle, name: str, room: str) -> None:
        """A socket was accepted: "joined", unless it resumed its session (it never left)."""
        self.serving[stab.session_id] = stab.connection_id
        pending = self.pending.pop(stab.session_id, None)
        if pending is not None:
            pending.cancel()
        if not stab.resumed:
            members = stab.hub.group_size(room)
            await stab.publish(room, {"system": f"{name} joined", "members": members})

    async def departed(self, handle: ConnectionHandle, code: int, reason: str, by: str) -> None:
        """The ``on_disconnect`` hook: "left" now, later, or never (see the module docstring)."""
        session_id = handle.session_id
        if self.serving.get(session_id) != handle.connection_id:
            return  # a newer socket of the same session took over (4409): nobody left
        name = str(handle.user_data.get("name", "someone"))
        rooms = list(handle.user_data.get("rooms", []))
        if handle.resumable and not (by == "client" and code in DELIBERATE_CLOSES):
            grace = handle.hub.settings.session_ttl
            self.pending[session_id] = asyncio.create_task(
                self._left_unless_resumed(handle, name, rooms, code, grace)
            )
            return
        del self.serving[session_id]
        await self._announce_left(handle, name, rooms, code)

    async def _left_unless_resumed(
        self, handle: ConnectionHandle, name: str, rooms: list[str], code: int, grace: float
    ) -> None:
        await asyncio.sleep(grace)
        session_id = handle.session_id
        self.pending.pop(session_id, None)
        if self.serving.get(session_id) == handle.connection_id:
            del self.serving[session_id]
            # With the Redis backend the tab may have resumed on another process: then it
            # never left (presence spans the processes; in memory mode this one answers).
            with contextlib.suppress(BackendUnavailableError):
                if await handle.hub.presence.is_online(handle.client_id):
                    return
            await self._announce_left(handle, name, rooms, code)

    @staticmethod
    async def _announce_left(
        handle: ConnectionHandle, name: str, rooms: list[str], code: int
    ) -> None:
        for room in rooms:
            # Not to its own (away) session: it must not hear of its own leaving.
            await handle.hub.publish(
                room, {"system": f"{name} left", "code": code}, exclude=handle.client_id
            )

    async def close(self) -> None:
        """Cancel the delayed announcements (at shutdown)."""
        tasks = list(self.pending.values())
        self.pending.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def create_app(**settings: Unpack[SettingsOverrides]) -> FastAPI:
    """The chat app; ``settings`` override ``CHAT_SETTINGS`` (the tests shorten some)."""
    presence = Presence()
    merged: SettingsOverrides = {**CHAT_SETTINGS, **settings}
    hub = Hub(on_disconnect=presence.departed, **merged)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await presence.close()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(StabilizerMiddleware, hub=hub)
    app.router.routes.append(client_route())  # GET /stabilizer.js, the reconnecting client

    @app.websocket("/ws")
    async def chat(websocket: WebSocket, stab: Stabilizer) -> None:
        """``/ws?name=alice&room=lobby``: join the room, then relay every message to it."""
        name = websocket.query_params.get("name", "anonymous")[:40] or "anonymous"
        room = websocket.query_params.get("room", "lobby")[:40] or "lobby"
        # On a resume, user_data and the room come back with the session; this is a no-op.
        stab.user_data["name"] = name
        stab.user_data["rooms"] = [room]
        await websocket.accept()
        await stab.join(room)
        await presence.arrived(stab, name, room)
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

    @app.get("/")
    async def page() -> HTMLResponse:
        """A small page to try the chat in a browser."""
        return HTMLResponse(PAGE)

    return app


PAGE = r"""<!doctype html>
<meta charset="utf-8"><title>asgi_ws_stabilizer chat</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; max-width: 56em; }
  #state { padding: 0 .4em; border-radius: .3em; background: #eee; }
  #state.open { background: #c6efc6; }
  #state.connecting, #state.reconnecting { background: #fde6a8; }
  #state.closed { background: #f5bcbc; }
  #offline { color: #9a5800; }
  pre { height: 55vh; overflow: auto; border: 1px solid #ccc; padding: .5em; }
</style>
<p><input id="name" placeholder="name"> <input id="room" placeholder="room">
  <button id="join">join</button> state: <b id="state">connecting</b>
  <span id="resume"></span></p>
<pre id="log"></pre>
<p><input id="text" size="60" placeholder="say something, then Enter">
  <button id="send">send</button>
  <span id="offline" hidden>not connected: what you send is queued and goes out once the
  connection is back</span></p>
<script type="module">
import { StabilizedSocket } from "/stabilizer.js";

const $ = (id) => document.getElementById(id);
const log = (line) => { $("log").textContent += line + "\n"; $("log").scrollTop = 1e9; };
const query = new URLSearchParams(location.search);
$("name").value = query.get("name") || `guest-${Math.random().toString(36).slice(2, 6)}`;
$("room").value = query.get("room") || "lobby";
let socket = null;

function join() {
  if (socket) socket.close(); // 1000: this tab leaves its room for good
  const q = new URLSearchParams({ name: $("name").value, room: $("room").value });
  // ws: for a page served over http, wss: over https; same host and port as the page.
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // Answers the heartbeat, reconnects with backoff, resumes with its token and count,
  // and keeps what you send while offline.
  const s = new StabilizedSocket(`${scheme}//${location.host}/ws?${q}`);
  socket = s;
  let opens = 0;
  const show = () => {
    if (s !== socket) return; // an old socket's late event
    $("state").textContent = s.state;
    $("state").className = s.state;
    $("offline").hidden = s.state === "open" || s.state === "closed";
  };
  for (const name of ["open", "reconnecting", "close"]) s.on(name, show);
  s.on("open", ({ resumed }) => {
    opens += 1;
    if (opens > 1 && !resumed) {
      $("resume").textContent = "reconnected (new session): rejoined the room, " +
        "what was said meanwhile is not replayed";
    }
  });
  s.on("resumed", (d) => {
    $("resume").textContent = `resumed: ${d.replayed} replayed, ${d.missed} missed`;
  });
  s.on("message", ({ data }) => {
    let m;
    try { m = JSON.parse(data); } catch { m = { system: String(data) }; }
    log(m.system ? `* ${m.system}` : `${m.from}: ${m.text}`);
  });
  s.on("drop", ({ data }) => log(`(not sent, offline buffer full: ${data})`));
  show();
}

function send() {
  const text = $("text").value;
  if (!text || !socket) return;
  $("text").value = "";
  if (!socket.send(text)) log(`(not sent: ${text})`);
  else if (socket.buffered > 0) log(`(queued until the connection is back: ${text})`);
}
$("join").onclick = join;
$("send").onclick = send;
$("text").onkeydown = (e) => { if (e.key === "Enter") send(); };
join();
</script>
"""

app = create_app()
