"""WebSocket clients of the cluster app that record every frame they get and how they closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ..timing import t
from .workers import Worker


@dataclass(eq=False)
class Listener:
    """One socket: its worker, who it is, and every frame after the app's ``ready`` frame."""

    worker: Worker
    client_id: str
    groups: set[str]
    ws: ClientConnection
    connection_id: str
    frames: list[str] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    close_reason: str = ""
    task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Listener {self.client_id} on {self.worker.name} {sorted(self.groups)}>"

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "ping":  # the middleware's text heartbeat, when it is on
                    await self.ws.send("pong")
                    continue
                self.frames.append(frame if isinstance(frame, str) else frame.decode())
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()

    @property
    def open(self) -> bool:
        return not self.closed.is_set()

    async def command(self, text: str, answer: dict[str, str]) -> None:
        """Send ``join G`` / ``leave G`` and wait for the app's answer."""
        seen = len(self.frames)
        await self.ws.send(text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t(3)
        while True:
            for index in range(seen, len(self.frames)):
                if self.frames[index].startswith("{") and json.loads(self.frames[index]) == answer:
                    del self.frames[index]
                    return
            if loop.time() > deadline or self.closed.is_set():
                raise AssertionError(f"{self!r}: no answer to {text!r}")
            await asyncio.sleep(0.005)

    async def join(self, group: str) -> None:
        await self.command(f"join {group}", {"joined": group})
        self.groups.add(group)

    async def leave(self, group: str) -> None:
        await self.command(f"leave {group}", {"left": group})
        self.groups.discard(group)

    async def close(self) -> None:
        """Close from the client side (bounded) and stop reading."""
        await close_reading(self.ws, self.task)


async def close_reading(ws: ClientConnection, task: asyncio.Task[None] | None) -> None:
    """Close ``ws`` from the client side and stop ``task``, which reads it; each wait bounded."""
    with contextlib.suppress(ConnectionClosed, OSError, asyncio.TimeoutError):
        await asyncio.wait_for(ws.close(), t(3))
    if task is not None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), t(3))
        task.cancel()


async def open_ws(worker: Worker, query: dict[str, str]) -> tuple[ClientConnection, str | bytes]:
    """Connect to ``worker``'s ``/ws`` with ``query`` (no protocol pings, every wait bounded);
    the socket and the first frame it got."""
    ws = await connect(
        f"{worker.ws_url}/ws?{urlencode(query)}",
        ping_interval=None,
        open_timeout=t(5),
        close_timeout=t(2),
        max_queue=None,
        proxy=None,
    )
    try:
        return ws, await asyncio.wait_for(ws.recv(), t(5))
    except BaseException:
        await ws.close()
        raise


async def listen(worker: Worker, client_id: str, groups: Iterable[str] = ()) -> Listener:
    """Connect to ``worker`` as ``client_id`` in ``groups``; return once the app is ready."""
    groups = list(groups)
    query = {"client_id": client_id, "groups": ",".join(groups)}
    ws, first = await open_ws(worker, query)
    ready = json.loads(first)
    assert ready["client_id"] == client_id, ready
    assert sorted(ready["groups"]) == sorted(set(groups)), ready
    listener = Listener(worker, client_id, set(groups), ws, str(ready["ready"]))
    listener.task = asyncio.create_task(listener._read())
    _made.append(listener)
    return listener


_made: list[Listener] = []
"""Every listener made in this test, for ``close_every_listener``."""


async def listen_all(
    specs: Sequence[tuple[Worker, str, Iterable[str]]], at_once: int = 50
) -> list[Listener]:
    """``listen`` for each ``(worker, client_id, groups)``, ``at_once`` handshakes at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one(worker: Worker, client_id: str, groups: Iterable[str]) -> Listener:
        async with gate:
            return await listen(worker, client_id, groups)

    results = await asyncio.gather(*(one(*spec) for spec in specs), return_exceptions=True)
    listeners = [r for r in results if isinstance(r, Listener)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await close_all(listeners)
        raise failures[0]
    return listeners


async def close_all(listeners: Iterable[Listener]) -> None:
    """Close every listener still open, concurrently."""
    await asyncio.gather(*(listener.close() for listener in listeners))


async def close_every_listener() -> None:
    """Close every listener made since the last call (the fixtures' teardown)."""
    made = list(_made)
    _made.clear()
    await close_all(made)
