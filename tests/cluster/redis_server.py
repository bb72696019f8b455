"""A private ``redis-server`` on a free loopback port, for the cluster tests.

It never touches the shared Redis on 6379: the port is always a fresh one, and every command goes
to that port. Each command opens its own short-lived connection, named ``cluster-tests``, so
that the counts of client connections can leave it out and ``CLIENT KILL`` skips it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import IO

import redis

from benchmarks.server import end_process

from ..servers import require_program, written
from ..timing import t

SHARED_PORT = 6379
OUR_NAME = "cluster-tests"
CLIENT_TYPES = ("normal", "pubsub")
SERVER_ARGS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
"""Loopback only, no persistence (a restart starts empty), in the foreground (stopped by PID)."""


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the test without one, fails instead when ``CI=true``."""
    return require_program("redis-server", "cluster tests")


def private_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now, and never the shared Redis's."""
    for _ in range(20):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != SHARED_PORT:
            return port
    raise RuntimeError("no free port other than 6379")


def glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisServer:
    """One ``redis-server`` process: no persistence, loopback only, stopped by its PID."""

    def __init__(self, executable: str, port: int) -> None:
        if port == SHARED_PORT:
            raise ValueError("the cluster tests never use the shared Redis port 6379")
        self.executable = executable
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.paused = False
        self._log: IO[str] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        pid = self.process.pid if self.process is not None else None
        return f"<RedisServer port={self.port} pid={pid}>"

    # -- process ------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start on ``self.port`` and return once it answers ``PING``."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self!r} is already running")
        if self._log is not None:
            self._log.close()
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [self.executable, *SERVER_ARGS, "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.paused = False
        deadline = time.monotonic() + (timeout if timeout is not None else t(5))
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}: {self.output()}"
                )
            with contextlib.suppress(redis.RedisError, OSError), self.connect(0.2) as client:
                if client.ping():
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server on port {self.port} never answered PING")
            time.sleep(0.02)

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (after SIGCONT, if paused), then SIGKILL if it lingers; bounded."""
        process = self.process
        if process is None:
            return
        if process.poll() is None and self.paused:
            process.send_signal(signal.SIGCONT)
            self.paused = False
        end_process(process, wait=timeout if timeout is not None else t(5), kill_wait=t(5))
        self.process = None

    def restart(self) -> None:
        """Stop, then start again on the same port (with an empty dataset)."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def output(self) -> str:
        """What redis-server logged since its last start."""
        return "" if self._log is None else written(self._log)

    def close(self) -> None:
        """Stop, and drop the log."""
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- commands -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, timeout: float = 2.0) -> Iterator[redis.Redis]:
        """A sync client on our own connection, named ``cluster-tests``, closed afterwards.

        ``with server.connect() as client: client.info()`` runs any other command.
        """
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=0,
            client_name=OUR_NAME,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        try:
            yield client
        finally:
            client.close()

    def dbsize(self) -> int:
        """How many keys there are in db 0."""
        with self.connect() as client:
            return client.dbsize()

    def keys(self, prefix: str = "") -> list[str]:
        """Every key that starts with ``prefix`` (by ``SCAN``, never ``KEYS``)."""
        with self.connect() as client:
            return sorted(
                str(key) for key in client.scan_iter(match=glob_escape(prefix) + "*", count=1000)
            )

    def count_keys(self, prefix: str = "") -> int:
        """How many keys start with ``prefix``."""
        return len(self.keys(prefix))

    def clients(self) -> list[dict[str, str]]:
        """``CLIENT LIST`` without our own connections."""
        with self.connect() as client:
            return [c for c in client.client_list() if c.get("name") != OUR_NAME]

    def count_clients(self) -> int:
        """Client connections that are not ours (the backend's, in the tests)."""
        return len(self.clients())

    def kill_clients(self, types: tuple[str, ...] = CLIENT_TYPES) -> int:
        """``CLIENT KILL TYPE ... SKIPME yes`` for each type; how many were killed."""
        killed = 0
        with self.connect() as client:
            for kind in types:
                killed += int(client.client_kill_filter(_type=kind, skipme=True))
        return killed
