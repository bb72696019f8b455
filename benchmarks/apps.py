"""The subjects, one ASGI app each, chosen by ``BENCH_SUBJECT``.

* ``bare``: plain Starlette; a broadcast is a plain loop over a snapshot of the sockets.
* ``ours``: the same app with ``StabilizerMiddleware`` at default settings (``WS_STABILIZER_*``
  still apply); a broadcast goes through the hub.
* ``metrics``: ``ours`` with ``enable_metrics=True`` (the Prometheus sink records every event;
  ``GET /metrics`` serves them): the cost of turning metrics on. Needs prometheus-client.
* ``seed``: FastAPI with ``fastapi-websocket-stabilizer`` 1.1.0 used as its README shows.

Every subject serves the same routes: ``/echo`` (answer each text), ``/sub`` (listen; any text
is ignored), ``/flood`` (send 64 KiB frames until the peer stops reading), ``POST
/broadcast?seq=N&size=B`` (start a broadcast in the background and answer at once) and ``GET
/_bench/state`` (sockets registered, asyncio tasks; ``ours`` adds ``backend``, its backend's
counters). ``bare``, ``ours`` and ``metrics`` also serve ``POST
/paced?rate=R&seconds=S&size=B``: broadcasts at a steady ``R`` per second for ``S`` seconds,
each started in the background at its due time with the send timestamp in its payload; it
answers when every one has been handed over, with how many.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SUBJECT = os.environ.get("BENCH_SUBJECT", "bare")
SLOWDOWN = float(os.environ.get("BENCH_SLOWDOWN", "1"))
"""How many times slower than natively the server runs (``--meter instructions``: under
callgrind). The middleware's own wall-clock timers are stretched by as much (``stretch_timers``),
as uvicorn's pings are turned off: else, per unit of work, they would fire that many times more
often than natively, and a stall of the slowed loop would be reported as one."""
_background: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


def payload(seq: int, size: int) -> str:
    """``<seq> <send time> xxx…``, padded to ``size`` bytes."""
    head = f"{seq} {time.time():.6f} "
    return head + "x" * max(0, size - len(head))


async def paced(
    request: Request,
    send: Callable[[str], Coroutine[Any, Any, Any]],
    deferred: Callable[[Any], int],
) -> Response:
    """Start ``send(payload)`` at ``rate`` per second for ``seconds`` (due times fixed in
    advance, so a late turn of the loop is caught up at once), then wait for them all."""
    q = request.query_params
    rate, seconds, size = float(q["rate"]), float(q["seconds"]), int(q.get("size", "64"))
    count = max(1, round(rate * seconds))
    loop = asyncio.get_running_loop()
    sends: list[asyncio.Task[Any]] = []
    start = loop.time()
    for seq in range(count):
        delay = start + seq / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(loop.create_task(send(payload(seq, size))))
    elapsed = loop.time() - start
    results = await asyncio.gather(*sends)
    return JSONResponse(
        {"sent": count, "seconds": elapsed, "deferred": sum(deferred(r) for r in results)}
    )


async def flood_until_stuck(websocket: WebSocket) -> None:
    """Send 64 KiB frames until the peer stops reading (then the send blocks)."""
    chunk = "f" * 65536
    try:
        while True:
            await websocket.send_text(chunk)
    except (WebSocketDisconnect, OSError, RuntimeError):
        return


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        return


def state_route(registered: Any, backend: Callable[[], dict[str, Any]] | None = None) -> Route:
    async def state(request: Request) -> Response:
        body = {"registered": registered(), "tasks": len(asyncio.all_tasks()), "pid": os.getpid()}
        if backend is not None:
            body["backend"] = backend()
        return JSONResponse(body)

    return Route("/_bench/state", state)


def bare_app() -> Any:
    sockets: set[WebSocket] = set()

    async def sub(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def flood(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            await flood_until_stuck(websocket)
        finally:
            sockets.discard(websocket)

    async def fan_out(text: str) -> None:
        for websocket in list(sockets):
            try:
                await websocket.send_text(text)
            except (WebSocketDisconnect, OSError, RuntimeError):
                sockets.discard(websocket)

    async def broadcast(request: Request) -> Response:
        q = request.query_params
        _spawn(fan_out(payload(int(q["seq"]), int(q.get("size", "64")))))
        return JSONResponse({"targets": len(sockets)})

    async def paced_route(request: Request) -> Response:
        return await paced(request, fan_out, lambda _: 0)

    return Starlette(
        routes=[
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/sub", sub),
            WebSocketRoute("/flood", flood),
            Route("/broadcast", broadcast, methods=["POST"]),
            Route("/paced", paced_route, methods=["POST"]),
            state_route(lambda: len(sockets)),
        ]
    )


def stretch_timers() -> None:
    """Stretch the middleware's wall-clock timers by ``SLOWDOWN`` (see there): the reader
    watch's check and the loop-lag probe, both module constants read when a timer is armed."""
    from asgi_ws_stabilizer.aio import readers
    from asgi_ws_stabilizer.core import lagclock

    readers.READER_CHECK_DELAY *= SLOWDOWN
    lagclock.PROBE_INTERVAL *= SLOWDOWN


def ours_app(*, enable_metrics: bool = False) -> Any:
    """``ours``; with ``enable_metrics`` (the ``metrics`` subject) the hub also records every
    event in the Prometheus sink, and ``GET /metrics`` (last in the routes, so no request of the
    benchmarks reaches it) serves them."""
    from asgi_ws_stabilizer import Hub, StabilizerMiddleware, metrics_route

    if SLOWDOWN != 1:
        stretch_timers()
        hub = Hub(enable_metrics=enable_metrics, loop_stall_threshold=0.5 * SLOWDOWN)
    else:
        hub = Hub(enable_metrics=True) if enable_metrics else Hub()

    async def sub(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    async def flood(websocket: WebSocket) -> None:
        await websocket.accept()
        await flood_until_stuck(websocket)

    async def broadcast(request: Request) -> Response:
        q = request.query_params
        _spawn(hub.broadcast(payload(int(q["seq"]), int(q.get("size", "64")))))
        return JSONResponse({"targets": hub.connection_count})

    async def paced_route(request: Request) -> Response:
        return await paced(request, hub.broadcast, lambda result: int(result.deferred))

    app = Starlette(
        routes=[
            WebSocketRoute("/echo", echo),
            WebSocketRoute("/sub", sub),
            WebSocketRoute("/flood", flood),
            Route("/broadcast", broadcast, methods=["POST"]),
            Route("/paced", paced_route, methods=["POST"]),
            state_route(lambda: hub.connection_count, hub.backend.describe),
            *([metrics_route()] if enable_metrics else []),
        ]
    )
    app.add_middleware(StabilizerMiddleware, hub=hub)
    return app


def seed_app() -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi_websocket_stabilizer import (  # type: ignore[import-not-found,unused-ignore]
        WebSocketConfig,
        WebSocketConnectionManager,
    )

    # As its README's Quick Start, with limits raised so the benchmark is not refused.
    manager = WebSocketConnectionManager(
        WebSocketConfig(heartbeat_interval=30.0, heartbeat_timeout=60.0, max_connections=100_000)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        await manager.start()
        yield
        await manager.graceful_shutdown()

    app = FastAPI(lifespan=lifespan)
    counter = iter(range(10**9))

    @app.websocket("/sub")
    async def sub(websocket: WebSocket) -> None:
        client_id = f"c{next(counter)}"
        await websocket.accept()
        try:
            await manager.connect(client_id, websocket)
            while True:
                data = await websocket.receive_text()
                if data == "pong":
                    await manager.handle_pong(client_id)
                    continue
        except WebSocketDisconnect:
            with contextlib.suppress(Exception):
                await manager.disconnect(client_id)

    @app.websocket("/flood")
    async def flood(websocket: WebSocket) -> None:
        client_id = f"c{next(counter)}"
        await websocket.accept()
        await manager.connect(client_id, websocket)
        try:
            await flood_until_stuck(websocket)
        finally:
            with contextlib.suppress(Exception):
                await manager.disconnect(client_id)

    app.add_api_websocket_route("/echo", echo)

    @app.post("/broadcast")
    async def broadcast(seq: int, size: int = 64) -> dict[str, int]:
        _spawn(manager.broadcast(payload(seq, size)))
        return {"targets": manager.get_connection_count()}

    app.router.routes.append(state_route(manager.get_connection_count))
    return app


def wrap_app() -> Any:
    """``bare`` behind a middleware that only wraps receive and send (the floor of any
    interception; for looking at overheads, not one of the reported subjects)."""
    inner = bare_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await inner(scope, receive, send)
            return

        async def wrapped_receive() -> Any:
            return await receive()

        async def wrapped_send(message: Any) -> None:
            await send(message)

        await inner(scope, wrapped_receive, wrapped_send)

    return app


def metrics_app() -> Any:
    """``ours`` with metrics on (for the on/off cost; not in the default run)."""
    return ours_app(enable_metrics=True)


app: Any = {
    "bare": bare_app,
    "bare2": bare_app,  # a second bare server: the A/A check of the method
    "ours": ours_app,
    "metrics": metrics_app,
    "seed": seed_app,
    "wrap": wrap_app,
}[SUBJECT]()
