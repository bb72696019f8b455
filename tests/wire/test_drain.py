"""Drain on SIGTERM, in front of the server's own shutdown, in a real server process."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from ..conftest import client
from ..servers import free_port, wait_for_port
from ..timing import t
from .test_subprocess import PROCESS_KINDS, start, stop

CLIENTS = 200
SPREAD = 2.0
DRAIN_TIMEOUT = 5.0


async def until_closed(ws: Any) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Control frames received until the socket closed, and its close code and reason."""
    controls: list[dict[str, Any]] = []
    try:
        while True:
            frame = await asyncio.wait_for(ws.recv(), t(15))
            if isinstance(frame, str) and frame.startswith('{"$stabilizer"'):
                controls.append(json.loads(frame))
    except ConnectionClosed:
        pass
    return controls, ws.close_code, ws.close_reason


@pytest.mark.parametrize("kind", PROCESS_KINDS)
async def test_sigterm_drains_before_the_server_shuts_down(kind: str) -> None:
    """SIGTERM: every opted-in client gets its own drain frame, then a 1012 with our reason;
    the process exits within drain_timeout plus the server's own shutdown."""
    port = free_port()
    env = {
        "WS_STABILIZER_SECRET_KEY": "k" * 32,
        "WS_STABILIZER_DRAIN_SPREAD": str(SPREAD),
        "WS_STABILIZER_DRAIN_TIMEOUT": str(DRAIN_TIMEOUT),
        "WS_STABILIZER_HEARTBEAT_INTERVAL": "",
    }
    process = start(kind, port, env)
    try:
        await wait_for_port(port, 20)
        url = f"ws://127.0.0.1:{port}/echo?_stabilizer=1"
        sockets = [await client(url).__aenter__() for _ in range(CLIENTS)]
        for ws in sockets:
            first = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
            assert first["$stabilizer"] == "session"
        readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*readers)
        exit_code = await asyncio.to_thread(process.wait, DRAIN_TIMEOUT + 10)
        took = time.monotonic() - signalled
    finally:
        output = stop(process)
    delays = []
    for controls, code, reason in results:
        drains = [c for c in controls if c["$stabilizer"] == "drain"]
        assert len(drains) == 1, (controls, code, reason, output[-2000:])
        assert isinstance(drains[0]["token"], str)
        delays.append(drains[0]["retry_after_ms"])
        assert code == 1012
        assert reason == "server restarting"  # ours: uvicorn's own 1012 has no reason
    assert all(0 <= d < SPREAD * 1000 for d in delays)
    assert len(set(delays)) > CLIENTS // 2  # spread, not all equal
    assert took < DRAIN_TIMEOUT + 10
    print(
        f"\n[{kind}] {CLIENTS} clients drained; retry_after_ms min {min(delays)} "
        f"max {max(delays)} distinct {len(set(delays))}; exit {exit_code} after {took:.2f} s"
    )
