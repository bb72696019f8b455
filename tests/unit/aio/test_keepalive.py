"""Finding the server's protocol keepalive, and the advice when plain clients are unwatched."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
import uvicorn

from asgi_ws_stabilizer.aio.keepalive import Keepalive, advice, find_keepalive


@pytest.fixture
def restore_sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def nothing(scope: object, receive: object, send: object) -> None:
    """An ASGI app that is never called."""


@pytest.mark.usefixtures("restore_sigterm")
@pytest.mark.parametrize(("ping", "timeout"), [(20.0, 20.0), (None, 20.0), (20.0, None)])
def test_uvicorn_settings_are_read_from_its_signal_handler(
    ping: float | None, timeout: float | None
) -> None:
    """uvicorn's SIGTERM handler leads to its config: the ping interval and timeout."""
    server = uvicorn.Server(uvicorn.Config(nothing, ws_ping_interval=ping, ws_ping_timeout=timeout))
    signal.signal(signal.SIGTERM, server.handle_exit)
    assert find_keepalive() == Keepalive("uvicorn", ping, timeout)


@pytest.mark.usefixtures("restore_sigterm")
async def test_hypercorn_is_recognised_by_its_loop_signal_handler() -> None:
    """A loop signal handler from hypercorn's code says the server is hypercorn."""

    def handler() -> None:
        """Stands for the handler hypercorn's worker_serve installs (a nested function)."""

    handler.__module__ = "hypercorn.asyncio.run"
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, handler)
    try:
        assert find_keepalive(loop) == Keepalive("hypercorn")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


@pytest.mark.usefixtures("restore_sigterm")
def test_unknown_server() -> None:
    """With no handler of a known server, the server is unknown (and no advice is given)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    keepalive = find_keepalive()
    assert keepalive == Keepalive("unknown")
    assert advice(keepalive) is None


def test_advice() -> None:
    """uvicorn with both settings on watches plain clients; with one off, or hypercorn, the
    advice says what to set."""
    assert advice(Keepalive("uvicorn", 20.0, 20.0)) is None
    off = advice(Keepalive("uvicorn", None, 20.0))
    assert off is not None
    assert "--ws-ping-interval" in off
    assert "WS_STABILIZER_HEARTBEAT_CLIENTS=all" in off
    hypercorn = advice(Keepalive("hypercorn"))
    assert hypercorn is not None
    assert "never checks" in hypercorn
    assert "tcp_retries2" in hypercorn
