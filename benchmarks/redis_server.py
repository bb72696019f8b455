"""A private ``redis-server`` for the ``cluster`` scenario: a fresh loopback port, no persistence,
pinned to the server core with the workers, stopped by its PID.

It never touches a shared Redis (6379 is refused), and the harness needs no Redis client: the
readiness check is a raw ``PING``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from typing import IO

from .server import SERVER_CORE, can_pin, end_process, free_port, process_cpu

SHARED_PORT = 6379


def redis_server_path() -> str | None:
    """The path of ``redis-server``, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


class RedisServer:
    """``redis-server --port <free> --bind 127.0.0.1 --save "" --appendonly no``."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = free_port()
        if self.port == SHARED_PORT:
            raise RuntimeError("never the shared Redis port 6379")
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu(self) -> float:
        """CPU seconds redis-server has used, all its threads."""
        return process_cpu(self.pid)

    def __enter__(self) -> RedisServer:
        self._log = tempfile.TemporaryFile()  # closed in __exit__
        command = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ]  # fmt: skip
        if can_pin():
            command = ["taskset", "-c", str(SERVER_CORE), *command]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._pong():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.__exit__()
                raise RuntimeError(f"redis-server did not start: {output[-2000:]}")
            time.sleep(0.05)
        return self

    def _pong(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        return False

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            end_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None
