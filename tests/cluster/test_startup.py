"""Start-up of a worker: memory mode by default, and bad backend settings that stop it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from ..timing import t
from .conftest import SECRET
from .listeners import close_every_listener, listen
from .redis_server import RedisServer
from .waits import eventually
from .workers import Cluster, Worker, exit_status, spawn, stop


@pytest.fixture
async def memory_worker() -> AsyncIterator[tuple[Cluster, Worker]]:
    """One worker with no WS_STABILIZER_* variable at all."""
    cluster = Cluster({})
    worker = await cluster.add()
    try:
        yield cluster, worker
    finally:
        await close_every_listener()
        await cluster.close()


async def failed_start(env: Mapping[str, str]) -> tuple[int, str]:
    """Start a worker that should refuse to start: its exit status and its output."""
    worker = spawn("failing", env)
    try:
        code = await exit_status(worker)
    finally:
        output = await asyncio.to_thread(stop, worker)
    return code, output


async def test_memory_mode_starts_and_serves(memory_worker: tuple[Cluster, Worker]) -> None:
    """Without WS_STABILIZER_BACKEND_URL a worker starts, and its hub sends reach its socket."""
    cluster, worker = memory_worker
    listener = await listen(worker, "m1", ["g"])
    assert await cluster.send_to(worker, "m1", "direct") == 1
    assert await cluster.send_to(worker, "nobody", "lost") == 0
    published = await cluster.publish(worker, "g", "grouped")
    assert published["queued"] == 1

    async def arrived() -> None:
        assert listener.frames == ["direct", "grouped"]

    await eventually(arrived, t(2))


async def test_memory_mode_reports_its_backend_and_presence(
    memory_worker: tuple[Cluster, Worker],
) -> None:
    """In memory mode stats()["backend"] says memory/connected and presence answers for the
    one process."""
    cluster, worker = memory_worker
    await listen(worker, "m1", ["g"])
    await listen(worker, "m1", [])
    backend = await cluster.backend(worker)
    assert backend["kind"] == "memory"
    assert backend["state"] == "connected"
    for name in ("url", "reconnects", "buffered", "dropped", "published"):
        assert name in backend, backend
    presence = await cluster.presence(worker, ["g", "none"], ["m1", "m2"])
    assert presence == {
        "count": 2,
        "client_ids": ["m1"],
        "groups": {"g": {"members": ["m1"], "size": 1}, "none": {"members": [], "size": 0}},
        "online": {"m1": True, "m2": False},
    }


async def test_a_bad_backend_url_stops_the_server() -> None:
    """WS_STABILIZER_BACKEND_URL=foo://x makes uvicorn exit non-zero, naming the variable."""
    code, output = await failed_start({"WS_STABILIZER_BACKEND_URL": "foo://x"})
    assert code != 0, output
    assert "WS_STABILIZER_BACKEND_URL" in output, output


async def test_redis_mode_without_a_secret_stops_the_server(redis_server: RedisServer) -> None:
    """A redis:// backend without WS_STABILIZER_SECRET_KEY makes uvicorn exit non-zero, naming
    the variable."""
    code, output = await failed_start({"WS_STABILIZER_BACKEND_URL": redis_server.url})
    assert code != 0, output
    assert "WS_STABILIZER_SECRET_KEY" in output, output


async def test_redis_mode_without_redis_py_stops_the_server(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A redis:// backend when redis-py cannot be imported makes uvicorn exit non-zero, naming
    WS_STABILIZER_BACKEND_URL."""
    hidden = tmp_path / "redis"
    hidden.mkdir()
    (hidden / "__init__.py").write_text('raise ImportError("redis-py hidden by the test")\n')
    env = {
        "PYTHONPATH": str(tmp_path),
        "WS_STABILIZER_BACKEND_URL": redis_server.url,
        "WS_STABILIZER_SECRET_KEY": SECRET,
    }
    code, output = await failed_start(env)
    assert code != 0, output
    assert "WS_STABILIZER_BACKEND_URL" in output, output
    assert "redis" in output.lower()


async def test_redis_mode_starts_with_a_secret(redis_server: RedisServer) -> None:
    """A redis:// backend with a secret starts, connects, and writes only prefixed keys."""
    cluster = Cluster(
        {
            "WS_STABILIZER_BACKEND_URL": redis_server.url,
            "WS_STABILIZER_SECRET_KEY": SECRET,
            "WS_STABILIZER_BACKEND_PREFIX": "startup",
        }
    )
    try:
        worker = await cluster.add()
        await listen(worker, "r1", ["g"])
        backend = await cluster.backend(worker)
        assert backend["kind"] == "redis"
        assert backend["state"] == "connected"
        assert str(redis_server.port) in backend["url"]
        assert redis_server.count_clients() >= 1
        assert redis_server.dbsize() == redis_server.count_keys("startup:")
    finally:
        await close_every_listener()
        await cluster.close()
