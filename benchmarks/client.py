"""A minimal asyncio WebSocket client for load generation.

The ``websockets`` library is the right client for tests; for thousands of sockets in one process
its per-message cost would measure the client, not the server. This one speaks just enough of
RFC 6455: an uncompressed handshake (no extensions, so no server-side deflate either),
unfragmented text frames, masked client frames, answers to protocol PINGs, and close. It answers
the text heartbeats of the subjects (``ping`` and the seed's ``{"type":"ping",...}``) with
``pong``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
import time
from collections.abc import Callable


class WSClient(asyncio.Protocol):
    """One client socket; ``on_text(text, received_at)`` sees every non-heartbeat text frame."""

    def __init__(self, on_text: Callable[[str, float], None] | None = None) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._handshake_done = False
        self.pongs = 0

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        path: str,
        on_text: Callable[[str, float], None] | None = None,
        timeout: float = 10.0,
    ) -> WSClient:
        """Open a socket and complete the handshake."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(on_text), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        assert protocol.transport is not None
        protocol.transport.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await asyncio.wait_for(protocol.opened, timeout)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(1006)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._handshake_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return
            self._handshake_done = True
            self.opened.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self._buffer
        now = time.time()
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    return
                (length,) = struct.unpack_from("!H", buf, 2)
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                (length,) = struct.unpack_from("!Q", buf, 2)
                offset = 10
            if len(buf) < offset + length:
                return
            body = bytes(buf[offset : offset + length])
            del buf[: offset + length]
            if opcode == 1:
                text = body.decode()
                if text == "ping" or text.startswith('{"type":"ping"'):
                    self.pongs += 1
                    self.send_text("pong")
                elif self.on_text is not None:
                    self.on_text(text, now)
            elif opcode == 9:
                self._frame(10, body)
            elif opcode == 8:
                code = struct.unpack_from("!H", body)[0] if len(body) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(code)
                if self.transport is not None:
                    self._frame(8, body[:2])
                    self.transport.close()

    def _frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = (
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if n < 256
            else _mask(payload, mask)
        )
        self.transport.write(head + mask + masked)

    def send_text(self, text: str) -> None:
        """Send one text frame."""
        self._frame(1, text.encode())

    async def close(self, timeout: float = 5.0) -> None:
        """Send a close frame and wait for the server's (or the end of the connection)."""
        self._frame(8, struct.pack("!H", 1000))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        if self.transport is not None:
            self.transport.abort()


def _mask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def http_post(host: str, port: int, path: str) -> bytes:
    """A one-shot HTTP POST; returns the body."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[-1]


async def http_get_json(host: str, port: int, path: str) -> dict[str, object]:
    """A one-shot HTTP GET of a JSON body."""
    import json

    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return dict(json.loads(data.split(b"\r\n\r\n", 1)[-1]))
