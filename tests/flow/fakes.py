"""Hand-driven ASGI plumbing: a fake server socket, tiny raw apps and a bounded wait."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..timing import WAIT


class FakeSocket:
    """The server's side of one WebSocket: feed it client events, read what the middleware sent.

    The ``websocket.connect`` event is queued already, as a server would deliver it first.
    """

    def __init__(
        self,
        *,
        query: str = "",
        headers: Iterable[tuple[str, str]] = (),
        client: tuple[str, int] | None = ("127.0.0.1", 50000),
        denial_response: bool = True,
    ) -> None:
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("testserver", 80),
            "client": client,
            "root_path": "",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": query.encode(),
            "headers": [
                (b"host", b"testserver"),
                *((name.lower().encode(), value.encode()) for name, value in headers),
            ],
            "subprotocols": [],
            "state": {},
            "extensions": {"websocket.http.response": {}} if denial_response else {},
        }
        self.inbound: asyncio.Queue[Message] = asyncio.Queue()
        self.outbound: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.receive_calls = 0
        self.inbound.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> Message:
        """The server's ``receive``."""
        self.receive_calls += 1
        return await self.inbound.get()

    async def send(self, message: Message) -> None:
        """The server's ``send``.

        After a close sent on an accepted socket, the next ``receive`` says the socket is
        gone (with that code), as uvicorn does; the client's own close reply is not modelled.
        """
        self.sent.append(message)
        self.outbound.put_nowait(message)
        if message["type"] == "websocket.close" and any(
            m["type"] == "websocket.accept" for m in self.sent
        ):
            code = message.get("code", 1000)
            self.inbound.put_nowait({"type": "websocket.disconnect", "code": code})

    def text(self, text: str) -> None:
        """The client sends a text message."""
        self.inbound.put_nowait({"type": "websocket.receive", "text": text})

    def data(self, data: bytes) -> None:
        """The client sends a binary message."""
        self.inbound.put_nowait({"type": "websocket.receive", "bytes": data})

    def disconnect(self, code: int = 1000) -> None:
        """The client goes away."""
        self.inbound.put_nowait({"type": "websocket.disconnect", "code": code})

    async def next_sent(self) -> Message:
        """The next message the middleware sent to the server."""
        return await asyncio.wait_for(self.outbound.get(), WAIT)

    async def accepted(self) -> None:
        """Wait until the middleware has sent the accept (the first thing it sends)."""
        message = await self.next_sent()
        assert message["type"] == "websocket.accept", message

    def serve(self, app: ASGIApp) -> asyncio.Task[None]:
        """Run ``app`` (the middleware) on this socket in a task."""

        async def run() -> None:
            await app(self.scope, self.receive, self.send)

        return asyncio.create_task(run())

    def sent_texts(self) -> list[str]:
        """Text frames sent so far."""
        return [m["text"] for m in self.sent if m["type"] == "websocket.send" and "text" in m]

    def closes(self) -> list[Message]:
        """Close messages sent so far."""
        return [m for m in self.sent if m["type"] == "websocket.close"]


async def finish(task: asyncio.Task[None]) -> None:
    """Await a served socket's task within the bound."""
    await asyncio.wait_for(task, WAIT)


@dataclass
class Probe:
    """What a raw test app saw."""

    calls: int = 0
    received: list[Message] = field(default_factory=list)
    scope: Scope | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)


def echo_app(probe: Probe) -> ASGIApp:
    """Accept, then answer each text with ``echo:<text>`` until the client leaves."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(10_000):
            message = await receive()
            probe.received.append(message)
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": "echo:" + text})

    return app


def record_app(probe: Probe) -> ASGIApp:
    """Accept, then record every message until the client leaves, sending nothing."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(10_000):
            message = await receive()
            probe.received.append(message)
            if message["type"] == "websocket.disconnect":
                return

    return app


def holding_app(probe: Probe) -> ASGIApp:
    """Accept, then never receive: wait for ``probe.release`` and return."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.calls += 1
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        await probe.release.wait()

    return app
