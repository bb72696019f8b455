"""A server in its own process, configured by environment variables only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from benchmarks.server import end_process

from ..conftest import client
from ..servers import StalledReader, free_port, wait_for_port, written
from ..timing import t

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.wire.envapp:app"
PROCESS_KINDS = ("uvicorn-sansio", "hypercorn")
UVICORN_WS = {
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-websockets": "websockets",
    "uvicorn-wsproto": "wsproto",
}


def command(kind: str, port: int, app: str = APP) -> list[str]:
    """The command line serving ``app`` with server ``kind`` (one of ``SERVER_KINDS``)."""
    if kind == "hypercorn":
        # --workers 0: serve in this process, which then gets the signals itself (with worker
        # processes, hypercorn's parent takes SIGTERM and tells workers through an event).
        return [
            sys.executable, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "0",
        ]  # fmt: skip
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--ws",
        UVICORN_WS[kind],
        "--lifespan",
        "on",
        "--timeout-graceful-shutdown",
        "3",
    ]


def start(kind: str, port: int, env: dict[str, str], app: str = APP) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WS_STABILIZER_")}
    full_env.update(env)
    # A file, not a pipe: a server logging two lines per connection would fill a pipe
    # nobody reads until the end, and block.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
    process = subprocess.Popen(
        command(kind, port, app),
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _logs[process.pid] = log
    return process


_logs: dict[int, Any] = {}


def stop(process: subprocess.Popen[str]) -> str:
    end_process(process, wait=10)
    log = _logs.pop(process.pid)
    log.seek(0)
    output = str(log.read())
    log.close()
    return output


@contextlib.asynccontextmanager
async def running(
    kind: str, env: dict[str, str], app: str = APP
) -> AsyncIterator[tuple[str, list[str]]]:
    """A server process; yields its URL and, after exit, its output in the list."""
    port = free_port()
    process = start(kind, port, env, app)
    output: list[str] = []
    try:
        await wait_for_port(port, 20)
        yield f"ws://127.0.0.1:{port}", output
    finally:
        output.append(await asyncio.to_thread(stop, process))


@pytest.mark.parametrize("kind", PROCESS_KINDS)
async def test_env_vars_configure_the_middleware(kind: str) -> None:
    """WS_STABILIZER_* variables set the heartbeat and the connection limit."""
    env = {
        "WS_STABILIZER_HEARTBEAT_INTERVAL": str(t(0.2)),
        "WS_STABILIZER_HEARTBEAT_CLIENTS": "all",
        "WS_STABILIZER_HEARTBEAT_TIMEOUT": str(t(0.2)),
        "WS_STABILIZER_MAX_CONNECTIONS": "1",
        "WS_STABILIZER_PING_MESSAGE": "are-you-there",
    }
    async with running(kind, env) as (url, _), client(url + "/echo") as ws:
        assert await asyncio.wait_for(ws.recv(), t(1)) == "are-you-there"
        with pytest.raises(InvalidStatus) as refused:
            async with client(url + "/echo"):
                pass
        assert refused.value.response.status_code == 503


@pytest.mark.parametrize("kind", PROCESS_KINDS)
async def test_bad_env_value_stops_the_server(kind: str) -> None:
    """A bad WS_STABILIZER_* value makes the server exit at start-up, naming the variable."""
    port = free_port()
    process = start(kind, port, {"WS_STABILIZER_HEARTBEAT_TIMEOUT": "-1"})
    try:
        code = await asyncio.to_thread(process.wait, 20)
    finally:
        output = stop(process)
    # The process has exited instead of serving. uvicorn exits with status 3; hypercorn 0.18
    # raises LifespanFailureError and still exits with status 0 (its own choice).
    if kind != "hypercorn":
        assert code != 0, output
    assert "startup" in output.lower()
    assert "WS_STABILIZER_HEARTBEAT_TIMEOUT" in output
    assert "greater than 0" in output


async def test_loop_stall_does_not_close_healthy_clients() -> None:
    """A 1 s loop stall is logged and does not close clients whose pongs it delayed."""
    interval = timeout = t(0.2)
    env = {
        "WS_STABILIZER_HEARTBEAT_INTERVAL": str(interval),
        "WS_STABILIZER_HEARTBEAT_CLIENTS": "all",
        "WS_STABILIZER_HEARTBEAT_TIMEOUT": str(timeout),
        "WS_STABILIZER_LOOP_STALL_THRESHOLD": "0.5",
    }
    async with running("uvicorn-sansio", env) as (url, output):
        async with client(url + "/echo") as healthy, client(url + "/echo") as blocker:
            done = asyncio.Event()
            echoes: list[str | bytes] = []

            async def answer(ws: Any) -> int:
                pings = 0
                while not done.is_set():
                    try:
                        frame = await asyncio.wait_for(ws.recv(), 0.05)
                    except asyncio.TimeoutError:  # not the builtin one before 3.11
                        continue
                    if frame == "ping":
                        pings += 1
                        await ws.send("pong")
                    else:
                        echoes.append(frame)
                return pings

            # Stall the server right after it pinged `healthy`, and answer that ping only
            # while the server is stalled: the pong then sits unread in the kernel when the
            # ping's deadline passes. Only the stall-adjusted clock keeps `healthy` open.
            assert await asyncio.wait_for(healthy.recv(), 2 * interval) == "ping"
            await blocker.send("block 1.0")
            await asyncio.sleep(0.1)
            await healthy.send("pong")
            answering = [asyncio.create_task(answer(ws)) for ws in (healthy, blocker)]
            await asyncio.sleep(1.0 + 6 * interval)
            await blocker.send("still there?")
            await asyncio.sleep(interval)
            done.set()
            pings = await asyncio.gather(*answering)
            assert healthy.close_code is None
            assert blocker.close_code is None
            assert min(pings) >= 5
            assert echoes == ["block 1.0", "still there?"]
    log = output[0]
    lags = [float(m) for m in re.findall(r"event_loop_blocked.*?lag_ms=([\d.]+)", log)]
    assert lags, log
    assert max(lags) >= 900
    assert "heartbeat_timeout" not in log
    # The watchdog names the code that blocked the loop: the handler's time.sleep line.
    long_stalls = [
        x
        for x in log.splitlines()
        if "event_loop_blocked" in x and float(re.findall(r"lag_ms=([\d.]+)", x)[0]) >= 900
    ]
    (blocked,) = long_stalls
    source = (Path(__file__).parent / "envapp.py").read_text().splitlines()
    line = 1 + next(i for i, x in enumerate(source) if "time.sleep(float(text" in x)
    assert "envapp.py" in blocked, blocked
    assert f"line={line}" in blocked, blocked
    assert "function=echo" in blocked, blocked
    assert "kind=code" in blocked, blocked


@pytest.mark.parametrize(("kind", "warned"), [("uvicorn-sansio", False), ("hypercorn", True)])
async def test_start_up_says_when_plain_clients_are_unwatched(kind: str, warned: bool) -> None:
    """At the defaults, a server whose protocol keepalive judges dead peers (uvicorn) gets no
    warning; hypercorn, whose pings never check for an answer, gets ``plain_clients_unwatched``
    with the advice."""
    async with running(kind, {}) as (url, output), client(url + "/echo") as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), t(2)) == "hi"
    text = "\n".join(output)
    assert ("plain_clients_unwatched" in text) is warned, text[-2000:]
    if warned:
        assert "tcp_retries2" in text


@pytest.mark.parametrize("kind", PROCESS_KINDS)
async def test_send_only_flood_ends_when_its_client_drops(kind: str) -> None:
    """A send-only handler flooding a plain client (no text heartbeat at the defaults) ends
    when that client drops its TCP connection, and the server keeps answering. On hypercorn a
    send to a gone peer is a silent no-op that completes at once: without the middleware
    yielding now and then, the handler would spin and freeze the whole server."""
    async with running(kind, {}) as (url, output):
        stalled = await asyncio.to_thread(StalledReader, url, "/flood")
        await asyncio.sleep(t(0.3))  # the flood fills every buffer on the way
        stalled.close()  # unread data: the kernel answers with a reset
        await asyncio.sleep(t(0.3))
        for _ in range(3):
            async with client(url + "/echo", open_timeout=t(3)) as ws:
                await ws.send("still serving?")
                assert await asyncio.wait_for(ws.recv(), t(3)) == "still serving?"
    assert "Traceback" not in "\n".join(output)


async def test_a_long_block_is_reported_while_it_lasts() -> None:
    """A handler that blocks the loop for 10 s: ``event_loop_still_blocked`` is in the server's
    output during the block (after max(5 s, 10 x loop_stall_threshold)), naming the line, while
    the client still waits for its echo; ``event_loop_blocked`` follows once it ends."""
    port = free_port()
    process = start("uvicorn-sansio", port, {})
    try:
        await wait_for_port(port, 20)
        async with client(f"ws://127.0.0.1:{port}/echo") as ws:
            await ws.send("block 10")
            loop = asyncio.get_running_loop()
            began, seen = loop.time(), ""
            while "event_loop_still_blocked" not in seen and loop.time() - began < 9:
                await asyncio.sleep(0.2)
                seen = await asyncio.to_thread(read_log, process)
            reported_after = loop.time() - began
            # The echo is still to come: the loop is blocked right now.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.01)
            assert await asyncio.wait_for(ws.recv(), t(15)) == "block 10"
    finally:
        output = stop(process)
    assert "event_loop_still_blocked" in seen, output[-3000:]
    assert 4.5 <= reported_after < 9.5, reported_after
    (still,) = [x for x in seen.splitlines() if "event_loop_still_blocked" in x]
    source = (Path(__file__).parent / "envapp.py").read_text().splitlines()
    line = 1 + next(i for i, x in enumerate(source) if "time.sleep(float(text" in x)
    assert "envapp.py" in still, still
    assert f"line={line}" in still, still
    assert "function=echo" in still, still
    blocked = [x for x in output.splitlines() if "event_loop_blocked" in x]
    assert any(float(re.findall(r"lag_ms=([\d.]+)", x)[0]) >= 9500 for x in blocked), blocked


def read_log(process: subprocess.Popen[str]) -> str:
    """What the server wrote so far, read while it runs."""
    return written(_logs[process.pid])
