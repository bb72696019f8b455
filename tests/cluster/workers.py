"""uvicorn worker processes serving ``tests/cluster/app.py``, and the calls the tests make to them.

Each worker is its own ``python -m uvicorn`` process on a free loopback port, with the
environment the test gives it (every inherited ``WS_STABILIZER_*`` variable removed). It is
stopped by its PID only: SIGTERM, then SIGKILL if it lingers, each wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from benchmarks.server import end_process

from ..servers import free_port, written
from ..timing import t
from .waits import eventually

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.cluster.app:app"


def command(port: int, app: str = APP) -> list[str]:
    """The command line of one worker."""
    return [
        sys.executable, "-m", "uvicorn", app,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--ws", "websockets-sansio",
        "--lifespan", "on",
        "--timeout-graceful-shutdown", "2",
    ]  # fmt: skip


@dataclass(eq=False)
class Worker:
    """One uvicorn process."""

    name: str
    port: int
    process: subprocess.Popen[str]
    log: IO[str] = field(repr=False)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return "" if self.log.closed else written(self.log)


def spawn(name: str, env: Mapping[str, str], port: int | None = None, app: str = APP) -> Worker:
    """Start a worker; it may not listen yet (see ``wait_listening``)."""
    port = port if port is not None else free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WS_STABILIZER_")}
    full_env.update(env)
    # A file, not a pipe: nobody reads a pipe until the end, and a full one blocks the server.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
    process = subprocess.Popen(
        command(port, app), cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    return Worker(name, port, process, log)


async def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on ``port`` right now."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_listening(worker: Worker, timeout: float | None = None) -> None:
    """Return once ``worker`` accepts connections (uvicorn binds after lifespan startup)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout if timeout is not None else t(20))
    while True:
        if not worker.alive:
            raise AssertionError(
                f"{worker.name} exited with {worker.process.returncode} before listening:\n"
                + worker.output()[-4000:]
            )
        if await accepts(worker.port):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{worker.name} does not listen on {worker.port}")
        await asyncio.sleep(0.05)


async def exit_status(worker: Worker, timeout: float | None = None) -> int:
    """The exit status of a worker expected to fail at start-up; fails if it serves instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (timeout if timeout is not None else t(20))
    while True:
        code = worker.process.poll()
        if code is not None:
            return code
        if await accepts(worker.port):
            raise AssertionError(
                f"{worker.name} started serving instead of exiting:\n" + worker.output()[-4000:]
            )
        if loop.time() > deadline:
            raise TimeoutError(f"{worker.name} neither exited nor listened")
        await asyncio.sleep(0.05)


def stop(worker: Worker, timeout: float | None = None) -> str:
    """SIGTERM, then SIGKILL if it lingers; closes the log and returns what it held."""
    end_process(worker.process, wait=timeout if timeout is not None else t(6), kill_wait=t(5))
    output = worker.output()
    worker.log.close()
    return output


def kill(worker: Worker) -> None:
    """SIGKILL: no drain, no lifespan shutdown, nothing cleaned up."""
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(t(5))


class Cluster:
    """Workers that share one environment (and so one backend), and HTTP calls to them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.workers: list[Worker] = []
        """Every worker started, in order, dead ones included."""
        self.http = httpx.AsyncClient(trust_env=False, timeout=t(30))
        self._names = 0

    @property
    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.alive]

    async def start(self, n: int) -> list[Worker]:
        """Start ``n`` workers at once; return once each listens."""
        started = [self._spawn() for _ in range(n)]
        await asyncio.gather(*(wait_listening(w) for w in started))
        return started

    async def add(self) -> Worker:
        """One more worker, listening."""
        (worker,) = await self.start(1)
        return worker

    def _spawn(self) -> Worker:
        worker = spawn(f"worker{self._names}", self.env)
        self._names += 1
        self.workers.append(worker)
        return worker

    def kill(self, worker: Worker) -> None:
        """SIGKILL ``worker``."""
        kill(worker)

    def terminate(self, worker: Worker) -> None:
        """SIGTERM ``worker`` (its drain runs) and return at once; ``close`` reaps it."""
        if worker.alive:
            worker.process.send_signal(signal.SIGTERM)

    async def exited(self, worker: Worker, timeout: float) -> int:
        """Wait (bounded) for ``worker`` to exit; its exit status."""
        return await asyncio.to_thread(worker.process.wait, timeout)

    async def replace(self, worker: Worker) -> Worker:
        """SIGKILL ``worker`` and start another in its place (on another port)."""
        self.kill(worker)
        return await self.add()

    async def close(self) -> dict[str, str]:
        """Stop every worker still running; their outputs by name."""
        outputs = await asyncio.gather(*(asyncio.to_thread(stop, w) for w in self.workers))
        await self.http.aclose()
        return {w.name: out for w, out in zip(self.workers, outputs, strict=True)}

    # -- the app's HTTP routes ----------------------------------------------------------------

    async def _post(self, worker: Worker, path: str, body: Mapping[str, Any]) -> Any:
        response = await self.http.post(worker.http_url + path, json=dict(body))
        if response.status_code != 200:
            raise AssertionError(f"{worker.name} {path} {response.status_code}: {response.text}")
        return response.json()

    async def _get(self, worker: Worker, path: str, params: Any = None) -> Any:
        response = await self.http.get(worker.http_url + path, params=params)
        if response.status_code != 200:
            raise AssertionError(f"{worker.name} {path} {response.status_code}: {response.text}")
        return response.json()

    async def broadcast(
        self, worker: Worker, message: str, exclude: Iterable[str] = ()
    ) -> dict[str, int]:
        body = {"op": "broadcast", "message": message, "exclude": list(exclude)}
        result: dict[str, int] = await self._post(worker, "/send", body)
        return result

    async def publish(
        self, worker: Worker, group: str, message: str, exclude: Iterable[str] = ()
    ) -> dict[str, int]:
        body = {"op": "publish", "group": group, "message": message, "exclude": list(exclude)}
        result: dict[str, int] = await self._post(worker, "/send", body)
        return result

    async def send_to(self, worker: Worker, client_id: str, message: str) -> int:
        body = {"op": "send_to", "client_id": client_id, "message": message}
        return int(await self._post(worker, "/send", body))

    async def app_send(self, worker: Worker, client_id: str, message: str) -> int:
        """``POST /app_send``: the app's own send on each socket of ``client_id`` on ``worker``."""
        body = {"client_id": client_id, "message": message}
        return int(await self._post(worker, "/app_send", body))

    async def close_client(self, worker: Worker, client_id: str, code: int, reason: str) -> int:
        body = {"op": "close", "client_id": client_id, "code": code, "reason": reason}
        return int(await self._post(worker, "/send", body))

    async def burst(self, worker: Worker, **body: Any) -> dict[str, Any]:
        """``POST /burst``: see the app's docstring for the fields."""
        result: dict[str, Any] = await self._post(worker, "/burst", body)
        return result

    async def burst_status(self, worker: Worker) -> dict[str, Any]:
        result: dict[str, Any] = await self._get(worker, "/burst")
        return result

    async def burst_done(self, worker: Worker, within: float) -> dict[str, object]:
        """Wait (up to ``within`` s) for a background burst on ``worker`` to finish; its final
        status."""
        status: dict[str, object] = {}

        async def check() -> None:
            status.update(await self.burst_status(worker))
            assert status["done"], f"the burst sent {status['sent']} of {status['n']}"

        await eventually(check, within, interval=0.1)
        return status

    async def presence(
        self, worker: Worker, groups: Iterable[str] = (), client_ids: Iterable[str] = ()
    ) -> dict[str, Any]:
        params = [("group", g) for g in groups] + [("client_id", c) for c in client_ids]
        result: dict[str, Any] = await self._get(worker, "/presence", params)
        return result

    async def stats(self, worker: Worker) -> dict[str, Any]:
        result: dict[str, Any] = await self._get(worker, "/stats")
        return result

    async def backend(self, worker: Worker) -> dict[str, Any]:
        """``hub.stats()["backend"]``."""
        stats = await self.stats(worker)
        if "backend" not in stats:
            raise AssertionError(f"{worker.name}: stats() has no 'backend': {sorted(stats)}")
        result: dict[str, Any] = stats["backend"]
        return result
