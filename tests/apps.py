"""Test apps: the same handlers served by a plain Starlette app and by a FastAPI app."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_ws_stabilizer import Hub, StabilizerMiddleware
from asgi_ws_stabilizer.errors import MemoryLimitExceededError

FLAVOURS = ("starlette", "fastapi")


@dataclass
class Recorder:
    """What the handlers saw, for the tests to check."""

    received: list[str | bytes] = field(default_factory=list)
    calls: int = 0
    send_loop_ended: asyncio.Event = field(default_factory=asyncio.Event)
    send_loop_error: list[str] = field(default_factory=list)


def build(flavour: str, hub: Hub | None = None, **settings: Any) -> tuple[Any, Recorder]:
    """An app of ``flavour`` with the middleware installed, and its recorder."""
    rec = Recorder()

    async def echo(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        async for text in websocket.iter_text():
            rec.received.append(text)
            await websocket.send_text(text)

    async def record(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            rec.received.append(message.get("text") or message.get("bytes") or b"")
            await websocket.send_text("ok")

    async def send_only(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        i = 0
        try:
            while True:
                await websocket.send_text(f"tick {i}")
                i += 1
                await asyncio.sleep(0.02)
        except Exception as exc:
            rec.send_loop_error.append(type(exc).__name__)
            raise
        finally:
            rec.send_loop_ended.set()

    async def flood(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        chunk = "x" * 65536
        while True:
            await websocket.send_text(chunk)

    async def raises(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        raise RuntimeError("boom from the handler")

    async def returns(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()

    async def wait_receive(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        await websocket.send_text("ready")
        await websocket.receive_text()

    async def block(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        async for text in websocket.iter_text():
            if text.startswith("block "):
                time.sleep(float(text.split()[1]))  # noqa: ASYNC251  (the classic mistake, on purpose)
            await websocket.send_text(text)

    async def handle_info(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        stab = websocket.state.stabilizer
        await websocket.send_json(
            {
                "connection_id": stab.connection_id,
                "client_id": stab.client_id,
                "session_id": stab.session_id,
                "hub_count": stab.hub.connection_count,
            }
        )
        await websocket.receive_text()

    async def listen(websocket: WebSocket) -> None:
        rec.calls += 1
        await websocket.accept()
        async for text in websocket.iter_text():
            rec.received.append(text)

    async def command(websocket: WebSocket) -> None:
        """JSON commands that drive the handle; each is acknowledged with {"ack": ...}."""
        rec.calls += 1
        stab = websocket.state.stabilizer
        await websocket.accept()
        async for text in websocket.iter_text():
            cmd = json.loads(text)
            ack: dict[str, Any] = {"ack": next(iter(cmd))}
            if "join" in cmd:
                ack["ok"] = await stab.join(cmd["join"])
            elif "leave" in cmd:
                ack["ok"] = await stab.leave(cmd["leave"])
            elif "publish" in cmd:
                result = await stab.publish(
                    cmd["publish"], cmd["msg"], exclude_self=cmd.get("exclude_self", False)
                )
                ack["result"] = vars(result)
            elif "broadcast" in cmd:
                result = await stab.broadcast(
                    cmd["broadcast"], exclude_self=cmd.get("exclude_self", False)
                )
                ack["result"] = vars(result)
            elif "send_to" in cmd:
                ack["reached"] = await stab.send_to(cmd["send_to"], cmd["msg"])
            elif "mixed" in cmd:
                for i in range(cmd["mixed"]):
                    await websocket.send_text(f"app-{i}")
                    await stab.send_to(stab.client_id, f"hub-{i}")
            elif "set" in cmd:
                try:
                    stab.user_data[cmd["set"]] = "x" * cmd["size"]
                    ack["ok"] = True
                except MemoryLimitExceededError as exc:
                    ack["ok"] = False
                    ack["limit"] = exc.limit
            await websocket.send_json(ack)

    async def identified(websocket: WebSocket) -> None:
        """The old library's ``/ws/{client_id}``: the app names the client, then accepts."""
        rec.calls += 1
        await websocket.state.stabilizer.identify(websocket.path_params["client_id"])
        await websocket.accept()
        async for text in websocket.iter_text():
            rec.received.append(text)
            await websocket.send_text(text)

    async def identified_late(websocket: WebSocket) -> None:
        """Accepts first, then learns who the client is from its first message."""
        rec.calls += 1
        await websocket.accept()
        await websocket.state.stabilizer.identify(await websocket.receive_text())
        await websocket.send_text("identified")
        async for text in websocket.iter_text():
            rec.received.append(text)
            await websocket.send_text(text)

    async def stats(request: Request) -> Response:
        return JSONResponse(request.state.stabilizer.stats())

    async def plain(request: Request) -> Response:
        body = await request.body()
        return PlainTextResponse(
            f"{request.method} {request.url.path} {len(body)}", headers={"x-test": "1"}
        )

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for i in range(5):
                yield f"chunk {i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    ws_routes: dict[str, Any] = {
        "/echo": echo,
        "/record": record,
        "/sendonly": send_only,
        "/flood": flood,
        "/raise": raises,
        "/return": returns,
        "/wait": wait_receive,
        "/block": block,
        "/info": handle_info,
        "/listen": listen,
        "/cmd": command,
        "/id/{client_id}": identified,
        "/late-id": identified_late,
    }
    http_routes: dict[str, Any] = {"/stats": stats, "/plain": plain, "/stream": stream}
    app: Any
    if flavour == "starlette":
        routes: list[Any] = [WebSocketRoute(p, h) for p, h in ws_routes.items()]
        routes += [Route(p, h, methods=["GET", "POST"]) for p, h in http_routes.items()]
        app = Starlette(routes=routes)
    elif flavour == "fastapi":
        app = FastAPI()
        for path, handler in ws_routes.items():
            app.add_api_websocket_route(path, handler)
        for path, handler in http_routes.items():
            app.add_api_route(path, handler, methods=["GET", "POST"])
    else:
        raise ValueError(flavour)
    if hub is not None:
        app.add_middleware(StabilizerMiddleware, hub=hub)
    else:
        app.add_middleware(StabilizerMiddleware, **settings)
    return app, rec
