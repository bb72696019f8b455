"""Fixtures of the cluster tests: a private ``redis-server``, and uvicorn workers sharing it.

``cluster(n, env)`` starts ``n`` workers in Redis mode against the test's own ``redis_server``
(presence_ttl ``PRESENCE_TTL``, key prefix ``PREFIX``, a 32-byte secret; ``env`` adds or
overrides variables). At teardown every listener is closed, then every worker is stopped by its
PID, then Redis. When the test failed, the tail of each worker's output is printed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Generator, Iterator, Mapping
from typing import Protocol

import pytest

from ..timing import t
from .listeners import close_every_listener
from .redis_server import RedisServer, private_port, require_redis_server
from .workers import Cluster

PRESENCE_TTL = max(1, round(t(2)))
"""``WS_STABILIZER_PRESENCE_TTL`` of the workers, in whole seconds."""
PREFIX = "acceptance"
"""``WS_STABILIZER_BACKEND_PREFIX``: every key the backend writes starts with ``acceptance:``."""
SECRET = "cluster-tests-secret-0123456789ab"
"""``WS_STABILIZER_SECRET_KEY``, shared by every worker (32+ bytes)."""

FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


def redis_env(server: RedisServer, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker in Redis mode against ``server``."""
    return {
        "WS_STABILIZER_BACKEND_URL": server.url,
        "WS_STABILIZER_BACKEND_PREFIX": PREFIX,
        "WS_STABILIZER_SECRET_KEY": SECRET,
        "WS_STABILIZER_PRESENCE_TTL": str(PRESENCE_TTL),
        # Stopping a worker with sockets open should not take the default 10 s drain.
        "WS_STABILIZER_DRAIN_TIMEOUT": str(t(1)),
        "WS_STABILIZER_DRAIN_SPREAD": "0",
        **(env or {}),
    }


NOISE = ("connection_opened", "connection_closed", '"WebSocket /', "connection open", "HTTP/1.1")


def notable(output: str) -> str:
    """A worker's output without its one or two lines per connection and request."""
    return "\n".join(line for line in output.splitlines() if not any(n in line for n in NOISE))


class StartCluster(Protocol):
    def __call__(self, n: int, env: Mapping[str, str] | None = None) -> Awaitable[Cluster]: ...


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A private redis-server on a free port (never 6379), stopped after the test."""
    server = RedisServer(require_redis_server(), private_port())
    server.start()
    try:
        yield server
    finally:
        if request.node.stash.get(FAILED, False):
            print(f"---- redis-server :{server.port} ----\n{server.output()[-2000:]}")
        server.close()


@pytest.fixture
async def cluster(
    redis_server: RedisServer, request: pytest.FixtureRequest
) -> AsyncIterator[StartCluster]:
    """``await cluster(n, env)``: n workers in Redis mode, all stopped after the test."""
    made: list[Cluster] = []

    async def start(n: int, env: Mapping[str, str] | None = None) -> Cluster:
        group = Cluster(redis_env(redis_server, env))
        made.append(group)
        await group.start(n)
        return group

    try:
        yield start
    finally:
        await close_every_listener()
        for group in made:
            outputs = await group.close()
            if request.node.stash.get(FAILED, False):
                for name, output in outputs.items():
                    print(f"---- {name} ----\n{notable(output)[-4000:]}")
