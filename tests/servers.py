"""Real ASGI servers on loopback for the wire tests, run in the test's own event loop.

Every server runs until the ``serve`` context exits, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from typing import IO, Any

import pytest

from benchmarks.proxy import LoopbackProxy

from .timing import t

UVICORN_KINDS = ("uvicorn-sansio", "uvicorn-websockets", "uvicorn-wsproto")
SERVER_KINDS = (*UVICORN_KINDS, "hypercorn")
_UVICORN_WS = {
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-websockets": "websockets",
    "uvicorn-wsproto": "wsproto",
}


def written(log: IO[Any]) -> str:
    """What a process we started has written so far to ``log``, its output file. Read with
    ``pread``: the file offset, which the process's own writes share, stays where it is (after a
    seek, its next writes could land over the start)."""
    fd = log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def require_program(name: str, needed_for: str) -> str:
    """The path of the program ``name`` (a Debian package of the same name): skips the test
    without it, and fails instead when ``CI=true``, where ``.ci/run`` installs it."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {name}): no {needed_for}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true, where .ci/run installs it")
        pytest.skip(reason)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Return once something accepts connections on ``port``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.02)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


@contextlib.asynccontextmanager
async def serve(app: Any, kind: str, **uvicorn_options: Any) -> AsyncIterator[str]:
    """Serve ``app`` with server ``kind``; yields ``ws://127.0.0.1:PORT``.

    ``uvicorn_options`` go to ``uvicorn.Config`` (e.g. ``ws_ping_interval``); uvicorn only.
    """
    port = free_port()
    if kind in _UVICORN_WS:
        import uvicorn

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws=_UVICORN_WS[kind],
            lifespan="on",
            log_level="warning",
            timeout_graceful_shutdown=5,
            **uvicorn_options,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        try:
            await wait_for_port(port)
            yield f"ws://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, t(15))
    elif kind == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        hconfig = Config()
        hconfig.bind = [f"127.0.0.1:{port}"]
        hconfig.graceful_timeout = 1.0
        hconfig.loglevel = "WARNING"
        stop = asyncio.Event()
        task = asyncio.create_task(hypercorn_serve(app, hconfig, shutdown_trigger=stop.wait))
        try:
            await wait_for_port(port)
            yield f"ws://127.0.0.1:{port}"
        finally:
            stop.set()
            await asyncio.wait_for(task, t(15))
    else:
        raise ValueError(f"unknown server kind {kind!r}")


class StalledReader:
    """A raw TCP WebSocket client that completes the handshake and then never reads.

    Its receive buffer is small, so the server's writes back up quickly.
    """

    def __init__(self, url: str, path: str) -> None:
        host_port = url.removeprefix("ws://")
        host, port = host_port.split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("server closed during handshake")
            response += chunk
        if not response.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(response.decode(errors="replace"))

    def close(self) -> None:
        """Drop the TCP connection without a close frame."""
        with contextlib.suppress(OSError):
            self.sock.close()


CutProxy = LoopbackProxy
"""The loopback proxy of ``benchmarks/proxy.py``: ``cut()`` and ``blackhole()``."""
