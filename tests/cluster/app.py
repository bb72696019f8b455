"""The app every cluster worker serves, configured by ``WS_STABILIZER_*`` variables only.

- ``/ws?client_id=ID&groups=a,b``: accepts, joins the groups, sends
  ``{"ready": connection_id, "client_id": ..., "groups": [...]}``, then reads until the peer
  leaves. A text ``join G`` or ``leave G`` joins or leaves group ``G`` and is answered
  ``{"joined": G}`` or ``{"left": G}``; any other input is ignored. An opted-in socket
  (``_stabilizer=1``) gets more in its ``ready``: ``session_id``, ``resumed``, ``replayed``,
  ``missed``, ``resume_reason`` and ``user_data`` (a dict), and a text ``set K V`` sets
  ``user_data[K] = V``, answered ``{"set": K}``.
- ``POST /app_send`` ``{"client_id", "message"}``: the app itself (``websocket.send_text``, not
  the hub) sends the message on each socket of that client on this worker; answers how many.
- ``POST /send`` ``{"op": "broadcast"|"publish"|"send_to"|"close", "group", "client_id",
  "message", "exclude", "code", "reason"}``: one hub call; answers the ``BroadcastResult``'s
  fields, or the int that ``send_to`` and ``close`` return. A hub call that raises answers 503
  with the error.
- ``POST /burst`` ``{"n", "mix_group", "pad", "every", "pause", "background"}``: publishes the
  texts ``"0"`` .. ``"n-1"`` in order (padded with ``" xxx..."`` to ``pad`` characters), each
  a broadcast, or with ``mix_group`` the odd ones to that group; sleeps ``pause`` seconds after
  every ``every`` of them. Inline it answers when done; with ``background`` at once, and
  ``GET /burst`` tells how far it got.
- ``GET /presence?group=G&client_id=C`` (each repeatable): the five presence answers.
- ``GET /stats``: ``hub.stats()``.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import (
    BroadcastResult,
    ConnectionHandle,
    Hub,
    StabilizerMiddleware,
    get_connection,
    get_hub,
)


def message_text(i: int, pad: int) -> str:
    """The ``i``-th message of a burst: ``"i"``, or ``"i xxx..."`` of ``pad`` characters."""
    return f"{i} ".ljust(pad, "x") if pad else str(i)


def error_response(exc: Exception) -> JSONResponse:
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=503)


_sockets: dict[str, set[WebSocket]] = {}
"""The open sockets of this worker by client id, for ``POST /app_send``."""


def ready_frame(stab: ConnectionHandle) -> dict[str, Any]:
    """The ``ready`` frame: who the socket is, and for an opted-in one its session."""
    frame: dict[str, Any] = {
        "ready": stab.connection_id,
        "client_id": stab.client_id,
        "groups": sorted(stab.groups),
    }
    if stab.resumable:
        frame.update(
            session_id=stab.session_id,
            resumed=stab.resumed,
            replayed=stab.replayed,
            missed=stab.missed,
            resume_reason=stab.resume_reason,
            user_data=dict(stab.user_data),
        )
    return frame


async def ws(websocket: WebSocket) -> None:
    stab = get_connection(websocket)
    groups = [g for g in websocket.query_params.get("groups", "").split(",") if g]
    await websocket.accept()
    for group in groups:
        await stab.join(group)
    client_id = stab.client_id  # after accept: a resumed session brings its own back
    _sockets.setdefault(client_id, set()).add(websocket)
    try:
        await websocket.send_json(ready_frame(stab))
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            verb, _, rest = (message.get("text") or "").partition(" ")
            if verb == "join" and rest:
                await stab.join(rest)
                await websocket.send_json({"joined": rest})
            elif verb == "leave" and rest:
                await stab.leave(rest)
                await websocket.send_json({"left": rest})
            elif verb == "set" and rest and stab.resumable:
                key, _, value = rest.partition(" ")
                stab.user_data[key] = value
                await websocket.send_json({"set": key})
    finally:
        mine = _sockets.get(client_id, set())
        mine.discard(websocket)
        if not mine:
            _sockets.pop(client_id, None)


async def app_send(request: Request) -> JSONResponse:
    body: dict[str, Any] = await request.json()
    sent = 0
    for websocket in list(_sockets.get(str(body["client_id"]), ())):
        try:
            await websocket.send_text(str(body["message"]))
        except Exception:  # gone meanwhile: not sent
            continue
        sent += 1
    return JSONResponse(sent)


async def send(request: Request) -> JSONResponse:
    hub = get_hub(request)
    body: dict[str, Any] = await request.json()
    op = body.get("op")
    message = body.get("message", "")
    exclude: list[str] | None = body.get("exclude") or None
    try:
        if op == "broadcast":
            return JSONResponse(asdict(await hub.broadcast(message, exclude=exclude)))
        if op == "publish":
            result = await hub.publish(str(body["group"]), message, exclude=exclude)
            return JSONResponse(asdict(result))
        if op == "send_to":
            return JSONResponse(await hub.send_to(str(body["client_id"]), message))
        if op == "close":
            code = int(body.get("code", 1000))
            reason = str(body.get("reason", ""))
            return JSONResponse(await hub.close(str(body["client_id"]), code, reason))
    except Exception as exc:
        return error_response(exc)
    return JSONResponse({"error": "bad_op", "detail": f"unknown op {op!r}"}, status_code=400)


@dataclass
class Burst:
    """How far the last burst got."""

    n: int = 0
    sent: int = 0
    done: bool = True
    errors: list[str] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    """The sum of every publish's ``BroadcastResult`` fields."""

    def reset(self, n: int) -> None:
        self.n, self.sent, self.done = n, 0, False
        self.errors.clear()
        self.totals.clear()

    def add(self, result: BroadcastResult) -> None:
        for name, value in asdict(result).items():
            if isinstance(value, int):
                self.totals[name] = self.totals.get(name, 0) + value


_burst = Burst()
_burst_tasks: set[asyncio.Task[None]] = set()


async def run_burst(hub: Hub, burst: Burst, body: dict[str, Any]) -> None:
    group = body.get("mix_group")
    pad = int(body.get("pad", 0))
    every = int(body.get("every", 0))
    pause = float(body.get("pause", 0))
    try:
        for i in range(burst.n):
            text = message_text(i, pad)
            try:
                if group and i % 2:
                    result = await hub.publish(str(group), text)
                else:
                    result = await hub.broadcast(text)
            except Exception as exc:
                burst.errors.append(f"{i}: {type(exc).__name__}: {exc}")
            else:
                burst.add(result)
            burst.sent = i + 1
            if every and (i + 1) % every == 0:
                await asyncio.sleep(pause)
    finally:
        burst.done = True


async def burst(request: Request) -> JSONResponse:
    if request.method == "GET":
        return JSONResponse(asdict(_burst))
    if not _burst.done:
        return JSONResponse({"error": "busy", "detail": "a burst is running"}, status_code=409)
    body: dict[str, Any] = await request.json()
    _burst.reset(int(body["n"]))
    runner = run_burst(get_hub(request), _burst, body)
    if body.get("background"):
        task = asyncio.create_task(runner)
        _burst_tasks.add(task)
        task.add_done_callback(_burst_tasks.discard)
    else:
        await runner
    return JSONResponse(asdict(_burst))


async def presence(request: Request) -> JSONResponse:
    view = get_hub(request).presence
    try:
        answer = {
            "count": await view.count(),
            "client_ids": await view.client_ids(),
            "groups": {
                group: {
                    "members": await view.group_members(group),
                    "size": await view.group_size(group),
                }
                for group in request.query_params.getlist("group")
            },
            "online": {
                client_id: await view.is_online(client_id)
                for client_id in request.query_params.getlist("client_id")
            },
        }
    except Exception as exc:
        return error_response(exc)
    return JSONResponse(answer)


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(get_hub(request).stats())


app = Starlette(
    routes=[
        WebSocketRoute("/ws", ws),
        Route("/send", send, methods=["POST"]),
        Route("/burst", burst, methods=["GET", "POST"]),
        Route("/app_send", app_send, methods=["POST"]),
        Route("/presence", presence),
        Route("/stats", stats),
    ]
)
app.add_middleware(StabilizerMiddleware)
