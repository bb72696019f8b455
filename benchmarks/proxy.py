"""A loopback TCP proxy that can stop forwarding: a peer that vanishes without a close."""

from __future__ import annotations

import asyncio
import contextlib


class BlackholeProxy:
    """Forwards ``127.0.0.1:port`` to a target until ``blackhole()``; then drops every byte
    both ways while keeping the sockets open, as a dead network path does."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.forwarding = True
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def blackhole(self) -> None:
        """Stop forwarding, without closing anything."""
        self.forwarding = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if self.forwarding:
                    dst.write(data)
                    await dst.drain()

    async def close(self) -> None:
        """Stop the proxy and its pipes."""
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
