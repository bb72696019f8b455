"""What the middleware costs per message or per connection, measured in process, no sockets.

Drives a subject's ASGI app (``benchmarks/apps.py``) directly, with ``receive``/``send`` backed
by an ``asyncio.Queue``, so that nothing but the app and the middleware runs::

    python -m benchmarks.inprocess echo ours 20000            # CPU per round trip
    python -m benchmarks.inprocess churn ours 3000 --log json  # CPU per connect + close
    python -m benchmarks.inprocess echo ours 20000 --profile   # the same under cProfile
    python -m benchmarks.inprocess fanout ours 50              # CPU per socket a broadcast reaches

For a count that does not move with the machine's load, run it twice under callgrind with two
sizes and take the difference per unit (what start-up costs cancels out)::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=a.out \\
        .venv/bin/python -m benchmarks.inprocess echo ours 2000
    (the same with 12000 into b.out; then (totals of b - totals of a) / 10000)

``--log`` sets structlog's renderer for the run: ``console`` (structlog's default), ``json`` (as
production apps configure it) or ``off`` (``WS_STABILIZER_LOG_LEVEL=WARNING``); output goes to
``/dev/null`` either way. At the default settings an ordinary connection logs nothing at INFO;
``--log-connections`` turns on ``log_connections``, so that each connection logs its two events
(what they cost is the difference from a run without it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from typing import Any

TEXT = "0:1:" + "e" * 32


def scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "scheme": "ws",
        "subprotocols": [],
        "asgi": {"version": "3.0"},
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }


async def echo(app: Any, n: int) -> int:
    """One socket on ``/echo``: ``n`` round trips, then the client leaves."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal done
        if message["type"] == "websocket.accept":
            queue.put_nowait({"type": "websocket.receive", "text": TEXT})
        elif message["type"] == "websocket.send":
            done += 1
            if done < n:
                queue.put_nowait({"type": "websocket.receive", "text": TEXT})
            else:
                queue.put_nowait({"type": "websocket.disconnect", "code": 1000})

    queue.put_nowait({"type": "websocket.connect"})
    await app(scope("/echo"), queue.get, send)
    return done


async def churn(app: Any, n: int) -> int:
    """``n`` sockets on ``/sub``, one after the other: each accepted, then the client leaves."""
    for _ in range(n):
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(message: dict[str, Any], queue: asyncio.Queue[Any] = queue) -> None:
            if message["type"] == "websocket.accept":
                queue.put_nowait({"type": "websocket.disconnect", "code": 1000})

        queue.put_nowait({"type": "websocket.connect"})
        await app(scope("/sub"), queue.get, send)
    return n


FANOUT_SOCKETS = 1000
"""Sockets on ``/sub`` in the ``fanout`` run; ``n`` is the number of broadcasts."""


async def fanout(app: Any, n: int) -> int:
    """``FANOUT_SOCKETS`` sockets on ``/sub`` (opened once, kept open across runs), then ``n``
    broadcasts through ``POST /broadcast``, each awaited until every socket was sent its frame;
    counted per socket reached."""
    sockets = _fanout_sockets.get(id(app))
    if sockets is None:
        sockets = _fanout_sockets[id(app)] = await _open_sockets(app, FANOUT_SOCKETS)
    for seq in range(n):
        sockets.sent = 0
        sockets.all_sent = asyncio.Event()
        await app(_http_scope("/broadcast", f"seq={seq}&size=64"), _request, _discard)
        await sockets.all_sent.wait()
    return n * FANOUT_SOCKETS


class _Sockets:
    def __init__(self, count: int) -> None:
        self.count = count
        self.sent = 0
        self.all_sent = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []


_fanout_sockets: dict[int, _Sockets] = {}


async def _open_sockets(app: Any, count: int) -> _Sockets:
    sockets = _Sockets(count)
    accepted = 0
    opened = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        nonlocal accepted
        kind = message["type"]
        if kind == "websocket.send":
            sockets.sent += 1
            if sockets.sent == sockets.count:
                sockets.all_sent.set()
        elif kind == "websocket.accept":
            accepted += 1
            if accepted == count:
                opened.set()

    for _ in range(count):
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        queue.put_nowait({"type": "websocket.connect"})
        sockets.tasks.append(asyncio.create_task(app(scope("/sub"), queue.get, send)))
    await opened.wait()
    await asyncio.sleep(0.1)  # every handler is waiting for its next frame
    return sockets


def _http_scope(path: str, query: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
        "scheme": "http",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "state": {},
    }


async def _request() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: dict[str, Any]) -> None:
    return None


async def measure(app: Any, what: str, n: int, profile: bool) -> float:
    """CPU seconds per unit of ``what`` (after a warm-up), inside the app's lifespan."""
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan.put_nowait({"type": "lifespan.startup"})
    life_scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    life = asyncio.create_task(app(life_scope, lifespan.get, lifespan_send))
    await started.wait()
    run = {"echo": echo, "churn": churn, "fanout": fanout}[what]
    await run(app, 5 if what == "fanout" else 200)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    cpu = time.process_time()
    units = await run(app, n)
    cpu = time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(
            int(os.environ.get("PROFILE_TOP", 30))
        )
    for task in _fanout_sockets.pop(id(app), _Sockets(0)).tasks:
        task.cancel()
    lifespan.put_nowait({"type": "lifespan.shutdown"})
    await life
    return cpu / units


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("what", choices=("echo", "churn", "fanout"))
    parser.add_argument("subject", help="a subject of benchmarks/apps.py: bare, ours, metrics")
    parser.add_argument("n", type=int)
    parser.add_argument("--log", choices=("console", "json", "off"), default="console")
    parser.add_argument("--log-connections", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    os.environ["BENCH_SUBJECT"] = args.subject
    if args.log_connections:
        os.environ["WS_STABILIZER_LOG_CONNECTIONS"] = "true"
    if args.log == "off":
        os.environ["WS_STABILIZER_LOG_LEVEL"] = "WARNING"
    import structlog

    sink = structlog.PrintLoggerFactory(open(os.devnull, "w"))  # noqa: SIM115 (whole run)
    if args.log == "json":
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=sink,
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(logger_factory=sink)
    from . import apps

    per_unit = asyncio.run(measure(apps.app, args.what, args.n, args.profile))
    unit = {"echo": "round trip", "churn": "connect + close", "fanout": "socket reached"}[args.what]
    log = args.log + (", log_connections" if args.log_connections else "")
    print(f"{args.subject} {args.what} (log {log}): {per_unit * 1e6:.1f} us CPU per {unit}")
    return per_unit


if __name__ == "__main__":
    main(sys.argv[1:])
