"""Raw-socket WebSocket clients for the hostile-client tests: they send what a library won't.

Everything runs on the test's own loop (the server shares it), on non-blocking sockets read only
when asked, so a client that "never reads" really leaves every byte in the kernel. Every read and
write is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from dataclasses import dataclass, field

from ..timing import t

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """One client frame; ``length`` claims a payload length other than the real one."""
    claimed = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    mask_bit = 0x80 if masked else 0
    if claimed < 126:
        head += bytes([mask_bit | claimed])
    elif claimed < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", claimed)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", claimed)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + mask(payload, key)


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XORed with the 4-byte ``key`` (fast for megabytes too)."""
    n = len(payload)
    if not n:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def text(payload: str | bytes) -> bytes:
    """A masked text frame (``bytes`` are sent as they are, valid UTF-8 or not)."""
    return frame(OP_TEXT, payload.encode() if isinstance(payload, str) else payload)


PING_TEXT = text("ping")
"""The heartbeat ping as a client text frame; every copy may share one mask."""


def close_frame(code: int = 1000) -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code))


@dataclass
class Response:
    """The server's answer to a handshake; ``status`` is ``None`` when it answered nothing."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def reason(self) -> str | None:
        return self.headers.get("x-stabilizer-reason")


class RawClient:
    """A WebSocket client on a bare socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buffer = b""

    @classmethod
    async def handshake(
        cls,
        url: str,
        target: bytes,
        *,
        rcvbuf: int | None = None,
        timeout: float = 5.0,
    ) -> tuple[RawClient, Response]:
        """Connect to ``url`` (``ws://host:port``) and ask for ``target`` (path and query,
        sent byte for byte); returns the client and the parsed response head."""
        host_port = url.removeprefix("ws://")
        host, port = host_port.rsplit(":", 1)
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        client = cls(sock)
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET " + target + b" HTTP/1.1\r\nHost: " + host_port.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            await asyncio.wait_for(client.loop.sock_connect(sock, (host, int(port))), timeout)
            try:
                await asyncio.wait_for(client.loop.sock_sendall(sock, request), timeout)
            except OSError as exc:  # refused while we were still writing: its answer may be in
                write_error = f"{type(exc).__name__} while sending"
            else:
                write_error = ""
            head = await client._read_head(timeout)
        except (OSError, TimeoutError) as exc:
            return client, Response(None, error=f"{type(exc).__name__}: {exc}")
        if head is None:
            return client, Response(None, error=write_error or "closed without an answer")
        return client, parse_head(head)

    async def _read_head(self, timeout: float) -> bytes | None:
        loop = self.loop
        deadline = loop.time() + timeout
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise OSError("response head over 64 KiB")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no response head")
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), remaining)
            if not chunk:
                return None
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    async def send(self, data: bytes, timeout: float = 5.0) -> None:
        """Write ``data`` entirely, within ``timeout``."""
        await asyncio.wait_for(self.loop.sock_sendall(self.sock, data), timeout)

    async def _read_exactly(self, n: int, deadline: float) -> bytes | None:
        while len(self.buffer) < n:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError("frame did not arrive")
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), remaining)
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """The next server frame as (opcode, payload); ``None`` when the TCP stream ended."""
        deadline = self.loop.time() + timeout
        head = await self._read_exactly(2, deadline)
        if head is None:
            return None
        length = head[1] & 0x7F
        if length == 126:
            extra = await self._read_exactly(2, deadline)
            if extra is None:
                return None
            length = struct.unpack("!H", extra)[0]
        elif length == 127:
            extra = await self._read_exactly(8, deadline)
            if extra is None:
                return None
            length = struct.unpack("!Q", extra)[0]
        if head[1] & 0x80 and await self._read_exactly(4, deadline) is None:
            return None
        payload = await self._read_exactly(length, deadline)
        if payload is None:
            return None
        return head[0] & 0x0F, payload

    async def ended(self, timeout: float) -> str:
        """Read until the server closes (a close frame or the end of the stream), skipping
        anything else; says how it ended. Raises ``TimeoutError`` if it stays open."""
        deadline = self.loop.time() + timeout
        while True:
            try:
                got = await self.read_frame(max(0.0, deadline - self.loop.time()))
            except ConnectionError as exc:
                return f"tcp {type(exc).__name__}"
            if got is None:
                return "tcp closed"
            opcode, payload = got
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return f"close {code}"

    def close(self) -> None:
        """Drop the TCP connection (no close frame)."""
        with contextlib.suppress(OSError):
            self.sock.close()

    async def goodbye(self) -> None:
        """A close frame, then drop the connection."""
        with contextlib.suppress(OSError, TimeoutError):
            await self.send(close_frame(), t(1))
        self.close()


def parse_head(head: bytes) -> Response:
    """Status and (lower-cased) headers of a response head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return Response(None, error=f"unparsable status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return Response(status, headers)
