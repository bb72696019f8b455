"""A loopback TCP proxy for failure tests: it can cut its connections (no WebSocket close, as a
network switch does) or stop forwarding while keeping them open (a dead path, a half-open
socket). Used by the benchmarks' ``dead`` scenario and by the resumption tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class LoopbackProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``."""

    def __init__(self, target_port: int, *, upstream_rcvbuf: int | None = None) -> None:
        """``upstream_rcvbuf`` caps the receive buffer of the proxy's connection to the target
        (set before connecting, so the kernel does not grow it): after ``freeze()`` the
        target's writes then block after a few MB instead of tens."""
        self.target_port = target_port
        self.upstream_rcvbuf = upstream_rcvbuf
        self.port = 0
        self.forwarding = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Cut everything and stop listening."""
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()

    async def __aenter__(self) -> LoopbackProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def cut(self) -> None:
        """Abort every proxied TCP connection (RST, no WebSocket close)."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def blackhole(self) -> None:
        """Stop forwarding both ways, leaving the connections open (data is still read and
        thrown away, so the peers' writes never block)."""
        self.forwarding = False

    def freeze(self) -> None:
        """Stop reading and forwarding both ways, leaving the connections open: the peers'
        kernel buffers fill and their writes block, as on a path that died silently."""
        self.forwarding = False
        self._flowing.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = socket.socket()
        if self.upstream_rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.upstream_rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", self.target_port))
        except OSError:
            sock.close()
            raise
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await self._flowing.wait()
                data = await src.read(65536)
                if not data:
                    break
                if self.forwarding:
                    dst.write(data)
                    await dst.drain()
