"""A connection that ends leaves no reference cycle: refcounting frees it at once.

A cycle per connection (a connection's gate holding the connection's method, its user data
holding its own methods, its scope holding the app's handle of it, the server's protocol object
holding that scope while the connection holds the protocol's receive and send) is found only by
the garbage collector: with thousands of sockets coming and going, its collections showed as a
tenth of the CPU of a connect + close, and the memory waited for them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_ws_stabilizer import Hub, StabilizerMiddleware

from .fakes import FakeSocket


@contextmanager
def garbage() -> Iterator[list[Any]]:
    """Everything unreachable that only the collector would free, while the block ran."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[Any] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def ours(objects: list[Any]) -> list[str]:
    return sorted(
        {type(o).__qualname__ for o in objects if type(o).__module__.startswith("asgi_ws_")}
    )


async def test_ended_connections_leave_nothing_for_the_garbage_collector() -> None:
    hub = Hub(heartbeat_interval=None)

    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        handle = websocket.state.stabilizer
        handle.user_data["name"] = "x" * 50
        await handle.join("room")
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    app = StabilizerMiddleware(Starlette(routes=[WebSocketRoute("/ws", chat)]), hub=hub)
    sent: list[str] = []

    async def one() -> None:
        # FakeSocket is what uvicorn's protocol object is to a socket: it keeps the scope
        # (whose state holds the app's handle), and its bound methods are the app's receive
        # and send.
        server = FakeSocket()
        server.text("hello")
        server.disconnect()
        await app(server.scope, server.receive, server.send)
        sent.extend(message["type"] for message in server.sent)

    await hub.start()
    try:
        await one()  # the first one sets up what every later connection shares
        with garbage() as found:
            for _ in range(20):
                await one()
            await hub.broadcast("after")  # nobody left to reach
        assert hub.connection_count == 0
        assert sent.count("websocket.accept") == 21
        assert ours(found) == [], f"cycles left by ended connections: {ours(found)}"
        servers = [o for o in found if isinstance(o, FakeSocket)]
        assert servers == [], f"{len(servers)} server-side objects left in cycles"
    finally:
        await hub.stop()
