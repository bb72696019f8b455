"""Sockets served through the middleware on one hub, and peers that stop reading."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message

from asgi_ws_stabilizer import ConnectionHandle, Hub, StabilizerMiddleware
from asgi_ws_stabilizer.aio.connection import Connection

from ..timing import WAIT
from .fakes import FakeSocket, Probe, holding_app

DATA = frozenset({"websocket.send"})
"""Data frames: what a peer that stops reading holds back."""
CLOSE = frozenset({"websocket.close"})
"""Close frames: what a peer with a full TCP window holds back when a connection is shed."""


class Valve:
    """Holds the server's ``send`` of some frames while shut, and counts sends held at once."""

    def __init__(self, *, shut: bool = False) -> None:
        self._open = asyncio.Event()
        if not shut:
            self._open.set()
        self.in_flight = 0
        self.max_in_flight = 0

    def shut(self) -> None:
        """Hold every later send until ``open``."""
        self._open.clear()

    def open(self) -> None:
        """Let every held send finish."""
        self._open.set()

    async def through(self) -> None:
        """Pass once the valve is open."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._open.wait()
        finally:
            self.in_flight -= 1


class GatedSocket(FakeSocket):
    """A ``FakeSocket`` whose ``send`` of the ``held`` message types waits on a ``Valve``.

    With the valve shut this is a peer that stopped reading: the server's write never finishes.
    """

    def __init__(
        self, valve: Valve, *, held: Collection[str] = DATA, query: str = "", **kwargs: Any
    ) -> None:
        super().__init__(query=query, **kwargs)
        self.valve = valve
        self.held = held

    async def send(self, message: Message) -> None:
        if message["type"] in self.held:
            await self.valve.through()
        await super().send(message)


@dataclass
class Served:
    """One socket served through the middleware, with what its app saw."""

    sock: FakeSocket
    task: asyncio.Task[None]
    probe: Probe

    @property
    def handle(self) -> ConnectionHandle:
        """The app's handle (``scope["state"]["stabilizer"]``)."""
        assert self.probe.scope is not None
        handle = self.probe.scope["state"]["stabilizer"]
        assert isinstance(handle, ConnectionHandle)
        return handle

    @property
    def connection(self) -> Connection:
        """The middleware's connection object behind the handle."""
        connection = self.handle.hub.registry.get(self.handle.connection_id)
        assert connection is not None
        return connection

    def texts(self) -> list[str]:
        """Text frames the server was asked to send, in order."""
        return self.sock.sent_texts()


async def serve(
    hub: Hub,
    *,
    app: Callable[[Probe], ASGIApp] = holding_app,
    query: str = "",
    sock: FakeSocket | None = None,
) -> Served:
    """Serve a socket on ``hub`` with ``app`` and wait for the accept."""
    probe = Probe()
    sock = sock if sock is not None else FakeSocket(query=query)
    task = sock.serve(StabilizerMiddleware(app(probe), hub=hub))
    await sock.accepted()
    return Served(sock, task, probe)


async def serve_many(hub: Hub, n: int, **kwargs: Any) -> list[Served]:
    """``serve`` ``n`` sockets one after the other (so they connect in list order)."""
    return [await serve(hub, **kwargs) for _ in range(n)]


async def end_all(served: Collection[Served]) -> None:
    """Let every app return and every client leave, then wait for each handler to end."""
    for one in served:
        one.probe.release.set()
        one.sock.disconnect()
    await asyncio.wait_for(asyncio.gather(*(one.task for one in served)), WAIT)
