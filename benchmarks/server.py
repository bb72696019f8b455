"""A subject's uvicorn process, pinned to one core, with its CPU time and memory read from /proc."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import instructions

ROOT = Path(__file__).resolve().parents[1]
SERVER_CORE = 0
CLIENT_CORE = 1

BASELINE: Path | None = None
"""A checkout of an earlier version (``run.py --baseline``): the ``before`` subject serves its
``ours`` app, for a before/after comparison in one run."""
CALLGRIND: Path | None = None
"""With ``run.py --meter instructions``: where the servers under callgrind write their counts
(``Server.cpu()`` then answers in giga-instructions, see benchmarks/instructions.py)."""


def can_pin() -> bool:
    """Two cores and taskset: server on one, clients on the other."""
    return (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def process_cpu(pid: int) -> float:
    """CPU seconds process ``pid`` has used, all threads, from schedstat (nanoseconds)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end_process(
    process: subprocess.Popen[Any],
    sig: signal.Signals = signal.SIGTERM,
    *,
    wait: float = 5.0,
    kill_wait: float = 5.0,
) -> None:
    """Stop a process we started: ``sig``, then SIGKILL if it is still there after ``wait``
    seconds; every wait bounded."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(kill_wait)


class Server:
    """``uvicorn benchmarks.apps:app`` for one subject."""

    def __init__(self, subject: str, env: dict[str, str] | None = None, *args: str) -> None:
        self.subject = subject
        self.port = free_port()
        self.env = env or {}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._count: instructions.Count | None = None

    def __enter__(self) -> Server:
        # Each subject at its defaults: no WS_STABILIZER_* of the caller's, and the `metrics`
        # subject's Prometheus values in its process's memory, not in files.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("WS_STABILIZER_") and k.upper() != "PROMETHEUS_MULTIPROC_DIR"
        }
        root, subject = ROOT, self.subject
        if subject == "before":
            if BASELINE is None:
                raise RuntimeError("the before subject needs --baseline PATH")
            root, subject = BASELINE, "ours"
        env.update({"BENCH_SUBJECT": subject, "PYTHONPATH": str(root)}, **self.env)
        if CALLGRIND is not None:
            env["BENCH_SLOWDOWN"] = str(instructions.SLOWDOWN)  # the app stretches its timers
        command = [
            sys.executable, "-m", "uvicorn", "benchmarks.apps:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log",
            "--timeout-graceful-shutdown", "5", *self.args,
        ]  # fmt: skip
        if CALLGRIND is not None:
            # uvicorn's protocol pings off: how many would fall into a measured window depends
            # on how long the slowed server takes, not on the work measured.
            command = instructions.wrap(
                [*command, "--ws-ping-interval", "0"], CALLGRIND, self.subject
            )
        if can_pin():
            command = ["taskset", "-c", str(SERVER_CORE), *command]
        self.process = subprocess.Popen(command, cwd=root, env=env)
        deadline = time.monotonic() + (30 if CALLGRIND is None else 300)
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.subject} server did not start")
            time.sleep(0.05)
        if CALLGRIND is not None:
            self._count = instructions.Count(self.process.pid, CALLGRIND, self.subject)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            end_process(self.process, signal.SIGINT, wait=10)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds the process has used, all threads, from schedstat (nanoseconds); under
        ``--meter instructions``, giga-instructions counted in the windows between pairs of
        calls (see benchmarks/instructions.py)."""
        if self._count is not None:
            return self._count.now() / 1e9
        return process_cpu(self.pid)

    def rss(self) -> int:
        """Resident memory in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")
