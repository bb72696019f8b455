"""A loop stall right after a ping, with the server in its own process (issue 7).

The server runs in a separate process, so that a client's pong really sits in the server's
kernel buffers while its loop is blocked. The stall is ``GET /block?seconds=1``, an ``async def``
route that calls ``time.sleep(1)``, sent by the test the moment a ping arrives (on a connection
opened beforehand), with heartbeat 0.2 s / 0.2 s:

- the pong goes out right after the request, so it races the stall;
- or the request goes out 0.13 s after the ping and the pong 0.02 s later, still well within
  the timeout, so the pong surely waits in the kernel for the whole stall. The stall-adjusted
  clock counts up to a probe interval plus jitter (0.15 s) of a stall as elapsed, so this
  ping's deadline has passed when the loop comes back, before the server has read the pong.

After a stall the server must read what arrived during it before it judges anyone by a deadline
the stall pushed past: the healthy client stays open and gets its echo. A client that never
answers is still closed 4408, shortly after the stall. Every server kind, with a Starlette and
a FastAPI app (both at once, each in its own server process).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from ..conftest import client
from ..servers import SERVER_KINDS
from ..timing import t
from .test_subprocess import running

APPS = {"starlette": "tests.wire.envapp:app", "fastapi": "tests.wire.envapp:fastapi_app"}
INTERVAL = TIMEOUT = t(0.2)
STALL = 1.0
ANSWERS = ((0.0, 0.0), (t(0.13), t(0.02)), (t(0.13), t(0.02)))
"""Per stall of the healthy client: seconds from the ping's arrival to the blocking request, and
from the request to the pong."""
AFTER_STALL = t(0.3)
"""How long the healthy client must stay open after a stall: a verdict by a deadline the stall
pushed past comes within a few loop iterations of its end."""
HEARTBEAT_TIMEOUT = 4408


class Peer:
    """Reads one client's frames in a task, answers pings (or not), stalls the server on one."""

    def __init__(self, ws: Any, *, answer: bool = True) -> None:
        self.ws = ws
        self.answer = answer
        self.pings = 0
        self.frames: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._armed: tuple[asyncio.StreamWriter, bytes, float, float] | None = None
        self.triggered = asyncio.Event()
        self.closed_at: float | None = None
        self.task = asyncio.create_task(self._run())

    def arm(self, writer: asyncio.StreamWriter, request: bytes, wait: float, pong: float) -> None:
        """At the next ping, write ``request`` after ``wait`` s and the pong ``pong`` s later."""
        self.triggered.clear()
        self._armed = (writer, request, wait, pong)

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                if frame != "ping":
                    self.frames.put_nowait(frame)
                    continue
                self.pings += 1
                if self._armed is not None:
                    writer, request, wait, pong = self._armed
                    self._armed = None
                    if wait:
                        await asyncio.sleep(wait)
                    writer.write(request)
                    self.triggered.set()
                    if pong:
                        await asyncio.sleep(pong)
                if self.answer:
                    await self.ws.send("pong")
        except ConnectionClosed:
            pass
        finally:
            self.closed_at = asyncio.get_running_loop().time()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def stall_at_ping(port: int, peer: Peer, wait: float = 0.0, pong: float = 0.0) -> float:
    """Block the server for ``STALL`` s at ``peer``'s next ping; returns when the stall ended."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), t(2))
    request = (
        f"GET /block?seconds={STALL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    try:
        peer.arm(writer, request, wait, pong)
        await asyncio.wait_for(peer.triggered.wait(), INTERVAL + TIMEOUT + wait + t(1))
        response = await asyncio.wait_for(reader.read(), STALL + t(3))
        ended = asyncio.get_running_loop().time()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert f"blocked {STALL}".encode() in response, response
    return ended


async def stalls_after_pings(kind: str, flavour: str) -> None:
    env = {
        "WS_STABILIZER_HEARTBEAT_INTERVAL": str(INTERVAL),
        "WS_STABILIZER_HEARTBEAT_CLIENTS": "all",
        "WS_STABILIZER_HEARTBEAT_TIMEOUT": str(TIMEOUT),
        "WS_STABILIZER_LOOP_STALL_THRESHOLD": "0.5",
    }
    where = f"{kind}, {flavour}"
    async with running(kind, env, APPS[flavour]) as (url, output):
        port = int(url.rsplit(":", 1)[1])
        async with client(url + "/echo") as ws:
            healthy = Peer(ws)
            try:
                for stall, (wait, pong) in enumerate(ANSWERS):
                    await stall_at_ping(port, healthy, wait, pong)
                    await asyncio.sleep(AFTER_STALL)
                    assert ws.close_code is None, (
                        f"{where}: closed {ws.close_code} after stall {stall}"
                    )

                # A peer that never answers, stalled right after its ping, is still closed:
                # its deadline is at most TIMEOUT (adjusted) away when the stall ends, and a
                # verdict waits at most a settle period after that.
                async with client(url + "/echo") as silent_ws:
                    silent = Peer(silent_ws, answer=False)
                    try:
                        ended = await stall_at_ping(port, silent)
                        await asyncio.wait_for(silent.task, TIMEOUT + t(1))
                    finally:
                        await silent.stop()
                    assert silent_ws.close_code == HEARTBEAT_TIMEOUT, where
                    assert silent.closed_at is not None
                    assert silent.closed_at - ended < TIMEOUT + t(0.25), where
                await asyncio.sleep(AFTER_STALL)
                assert ws.close_code is None, f"{where}: closed {ws.close_code} (silent's stall)"

                await ws.send("still there?")
                assert await asyncio.wait_for(healthy.frames.get(), t(2)) == "still there?"
                assert ws.close_code is None, where
                assert healthy.pings > len(ANSWERS), where
            finally:
                await healthy.stop()
    log = output[0]
    lags = [float(m) for m in re.findall(r"event_loop_blocked.*?lag_ms=([\d.]+)", log)]
    assert len(lags) == len(ANSWERS) + 1, log
    assert min(lags) >= 900, log
    assert log.count("heartbeat_timeout") == 1, log  # the silent client's


@pytest.mark.parametrize("kind", SERVER_KINDS)
async def test_stall_right_after_ping_keeps_healthy_client_open(kind: str) -> None:
    """1 s stalls right after a ping, its pong in the kernel: the healthy client stays open and
    gets its echo, on a Starlette and a FastAPI app; a silent client is still closed 4408."""
    results = await asyncio.gather(
        *(stalls_after_pings(kind, flavour) for flavour in APPS), return_exceptions=True
    )
    failures = [
        f"{flavour}: {result!r}" for flavour, result in zip(APPS, results, strict=True) if result
    ]
    assert not failures, "\n".join(failures)
