"""``heartbeat_clients``: which sockets get the text heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asgi_ws_stabilizer import Hub, StabilizerMiddleware
from asgi_ws_stabilizer.config.settings import SettingsOverrides

from ..timing import until
from .fakes import FakeSocket, Probe, echo_app, finish


def fast(**more: Any) -> Hub:
    """A hub with a 50 ms text heartbeat."""
    settings: SettingsOverrides = {"heartbeat_interval": 0.05, "heartbeat_timeout": 0.05}
    return Hub(**settings, **more)


@pytest.mark.parametrize(
    ("mode", "query", "pinged"),
    [
        ("opted_in", "", False),
        ("opted_in", "_stabilizer=1", True),
        ("all", "", True),
    ],
)
async def test_who_is_pinged(mode: str, query: str, pinged: bool) -> None:
    """Opted-in clients are pinged and timed out; plain ones only with ``all``."""
    hub = fast(heartbeat_clients=mode, secret_key="h" * 32)
    probe = Probe()
    sock = FakeSocket(query=query)
    task = sock.serve(StabilizerMiddleware(echo_app(probe), hub=hub))
    await sock.accepted()
    (connection,) = list(hub.registry)
    assert connection.beating is pinged
    if pinged:
        await until(lambda: bool(sock.closes()), "closed 4408 after the silence")
        assert "ping" in sock.sent_texts()
        assert sock.closes()[-1]["code"] == 4408
    else:
        await asyncio.sleep(0.3)  # six intervals: nothing must happen
        assert "ping" not in sock.sent_texts()
        assert sock.closes() == []
        sock.text("pong")  # not in the heartbeat: app data
        await until(lambda: "echo:pong" in sock.sent_texts(), "the app echoed it")
        sock.disconnect()
    await finish(task)
    assert hub.stats()["heartbeat_timeouts"] == (1 if pinged else 0)


async def test_plain_client_that_pings_gets_the_heartbeat() -> None:
    """A plain client's own ``ping`` is answered and enrols it: then pings, then 4408."""
    hub = fast()
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(echo_app(probe), hub=hub))
    await sock.accepted()
    sock.text("ping")
    await until(lambda: "pong" in sock.sent_texts(), "pong")
    await until(lambda: bool(sock.closes()), "closed 4408 after the silence")
    assert sock.sent_texts()[:2] == ["pong", "ping"]
    assert sock.closes()[-1]["code"] == 4408
    await finish(task)
    assert probe.received[:-1] == []  # neither ping nor pong reached the app
