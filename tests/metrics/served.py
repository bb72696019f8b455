"""uvicorn serving ``tests/metrics/app.py`` with metrics on, in a process of its own.

With ``multiprocess`` the workers share a fresh ``PROMETHEUS_MULTIPROC_DIR``. The server is
stopped by its PID (SIGTERM, then SIGKILL if it lingers), each wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import IO

from benchmarks.server import end_process

from ..cluster.workers import ROOT, Worker, accepts
from ..servers import free_port
from ..timing import t

APP = "tests.metrics.app:app"


def command(port: int, n: int) -> list[str]:
    """uvicorn's command line: ``--workers n`` unless ``n`` is 1."""
    workers = ["--workers", str(n)] if n > 1 else []
    return [
        sys.executable, "-m", "uvicorn", APP,
        "--host", "127.0.0.1", "--port", str(port), *workers,
        "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "2", "--no-access-log",
    ]  # fmt: skip


def spawn(argv: list[str], env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    """Start the server; its output goes to ``log`` (a file: a full pipe would block it)."""
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
    )


@contextlib.asynccontextmanager
async def uvicorn_workers(
    n: int, env: Mapping[str, str], *, multiprocess: bool
) -> AsyncIterator[Worker]:
    """``uvicorn --workers n`` (or one process for ``n=1``) serving the app, listening; its
    ``process`` is uvicorn's supervisor when ``n`` > 1."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prom-multiproc-") as directory:
        full = {k: v for k, v in os.environ.items() if not k.startswith("WS_STABILIZER_")}
        full.pop("PROMETHEUS_MULTIPROC_DIR", None)
        full.update(WS_STABILIZER_ENABLE_METRICS="true", WS_STABILIZER_LOG_LEVEL="WARNING", **env)
        if multiprocess:
            full["PROMETHEUS_MULTIPROC_DIR"] = directory
        log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed below)
        process = spawn(command(port, n), full, log)
        served = Worker(f"uvicorn --workers {n}", port, process, log)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + t(30)
            while not await accepts(port):
                assert process.poll() is None, served.output()[-3000:]
                assert loop.time() < deadline, f"uvicorn --workers {n} does not listen"
                await asyncio.sleep(0.1)
            yield served
        finally:
            end_process(process, wait=t(15), kill_wait=t(5))
            log.close()
