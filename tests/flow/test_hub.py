"""Hub: admission pause, per-client and per-IP limits through the registry, and stats."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import Hub, StabilizerMiddleware, StabilizerSettings

from ..timing import WAIT, until
from .fakes import FakeSocket, Probe, echo_app, finish, holding_app


def refusal(sock: FakeSocket) -> tuple[int, str, bytes | None]:
    """Status, reason and Retry-After of a denial response."""
    start = sock.sent[0]
    assert start["type"] == "websocket.http.response.start", start
    headers = dict(start["headers"])
    return start["status"], headers[b"x-stabilizer-reason"].decode(), headers.get(b"retry-after")


def test_hub_from_settings_and_overrides() -> None:
    """Keyword overrides on top of a settings object replace just those fields."""
    hub = Hub(StabilizerSettings(retry_after=9), heartbeat_interval=3)
    assert hub.settings.retry_after == 9
    assert hub.settings.heartbeat_interval == 3.0


def test_hub_warns_about_unknown_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt ``WS_STABILIZER_*`` variable is reported when the hub is built."""
    monkeypatch.setenv("WS_STABILIZER_HEARTBEAT_INTERVL", "5")
    with capture_logs() as logs:
        Hub()
    (event,) = [e for e in logs if e["event"] == "unknown_setting_env_var"]
    assert event["env_var"] == "WS_STABILIZER_HEARTBEAT_INTERVL"
    assert event["log_level"] == "warning"


async def test_pause_admission_refuses_draining_then_resume_admits() -> None:
    """While admission is paused handshakes get 503 ``draining``; after resuming they get in."""
    probe = Probe()
    hub = Hub(retry_after=11)
    mw = StabilizerMiddleware(echo_app(probe), hub=hub)
    hub.pause_admission()
    assert not hub.admitting
    refused = FakeSocket()
    await finish(refused.serve(mw))
    assert refusal(refused) == (503, "draining", b"11")
    assert probe.calls == 0
    hub.resume_admission()
    assert hub.admitting
    admitted = FakeSocket()
    admitted.disconnect()
    await finish(admitted.serve(mw))
    assert admitted.sent[0] == {"type": "websocket.accept"}
    assert probe.calls == 1
    assert hub.stats()["rejected"] == {"draining": 1}


async def test_per_client_limit_counted_via_registry() -> None:
    """The per-client limit counts the client's registered sockets and frees a slot on close."""
    probes = [Probe() for _ in range(3)]
    hub = Hub(max_connections_per_client=2, retry_after=3)
    socks = [FakeSocket(query="client_id=alice") for _ in range(3)]
    tasks = [
        s.serve(StabilizerMiddleware(holding_app(p), hub=hub))
        for s, p in zip(socks, probes, strict=True)
    ]
    await socks[0].accepted()
    await socks[1].accepted()
    await finish(tasks[2])
    assert refusal(socks[2]) == (429, "client_limit", b"3")
    assert probes[2].calls == 0
    assert hub.registry.count_client("alice") == 2
    other = FakeSocket(query="client_id=bob")
    other.disconnect()
    await finish(other.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert other.sent[0] == {"type": "websocket.accept"}
    probes[0].release.set()
    await finish(tasks[0])
    assert hub.registry.count_client("alice") == 1
    again = FakeSocket(query="client_id=alice")
    again.disconnect()
    await finish(again.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert again.sent[0] == {"type": "websocket.accept"}
    probes[1].release.set()
    await finish(tasks[1])
    assert hub.connection_count == 0


async def test_per_ip_limit_counted_via_registry() -> None:
    """The per-IP limit counts sockets from one address; other addresses are unaffected."""
    hub = Hub(max_connections_per_ip=1, retry_after=4)
    probe = Probe()
    first = FakeSocket(client=("10.0.0.1", 1000))
    first_task = first.serve(StabilizerMiddleware(holding_app(probe), hub=hub))
    await first.accepted()
    assert hub.registry.count_ip("10.0.0.1") == 1
    same_ip = FakeSocket(client=("10.0.0.1", 1001))
    await finish(same_ip.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert refusal(same_ip) == (429, "ip_limit", b"4")
    other_ip = FakeSocket(client=("10.0.0.2", 1000))
    other_ip.disconnect()
    await finish(other_ip.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert other_ip.sent[0] == {"type": "websocket.accept"}
    probe.release.set()
    await finish(first_task)
    assert hub.registry.count_ip("10.0.0.1") == 0


async def test_registered_before_accept_counts_toward_limit() -> None:
    """A socket admitted but not yet accepted already counts, so limits cannot be overshot."""
    hub = Hub(max_connections=1)
    release = asyncio.Event()

    async def slow_accept(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()

    first = FakeSocket()
    first_task = first.serve(StabilizerMiddleware(slow_accept, hub=hub))
    second = FakeSocket()
    await until(lambda: hub.connection_count == 1, "the first socket is registered")
    await finish(second.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert refusal(second)[:2] == (503, "server_full")
    release.set()
    await finish(first_task)
    assert hub.connection_count == 0


async def test_stats_after_a_few_connections() -> None:
    """``stats()`` counts connections, accepts, rejections, closes and traffic each way."""
    hub = Hub(max_connections=2)
    held = Probe()
    held_sock = FakeSocket()
    held_task = held_sock.serve(StabilizerMiddleware(holding_app(held), hub=hub))
    await held_sock.accepted()

    echo_sock = FakeSocket()
    echo_sock.text("hi")
    echo_sock.text("hello")
    echo_task = echo_sock.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub))
    await until(lambda: len(echo_sock.sent_texts()) == 2, "both echoed")
    echo_sock.disconnect(1001)
    await finish(echo_task)

    second_held = FakeSocket()
    second_task = second_held.serve(StabilizerMiddleware(holding_app(held), hub=hub))
    await second_held.accepted()
    refused = FakeSocket()
    await finish(refused.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))

    stats = hub.stats()
    assert set(stats) >= {
        "connections",
        "accepted",
        "rejected",
        "rejected_total",
        "closes",
        "closed_by",
        "messages_in",
        "messages_out",
        "bytes_in",
        "bytes_out",
        "heartbeat_timeouts",
        "pings_sent",
        "oversized_messages",
        "app_errors",
        "loop_stalls",
        "loop_max_stall_ms",
        "rtt",
    }
    assert stats["connections"] == 2
    assert stats["accepted"] == 3
    assert stats["rejected"] == {"server_full": 1}
    assert stats["rejected_total"] == 1
    assert stats["closes"] == {"1001": 1}
    assert stats["closed_by"] == {"client": 1}
    assert stats["messages_in"] == 2
    assert stats["messages_out"] == 2
    assert stats["bytes_in"] == len("hi") + len("hello")
    assert stats["bytes_out"] == len("echo:hi") + len("echo:hello")
    assert stats["app_errors"] == 0
    assert stats["rtt"]["samples"] == 0

    held.release.set()
    await asyncio.wait_for(asyncio.gather(held_task, second_task), WAIT)
    stats = hub.stats()
    assert stats["connections"] == 0
    assert stats["closes"] == {"1000": 2, "1001": 1}
    assert stats["closed_by"] == {"client": 1, "middleware": 2}


async def test_live_traffic_counted_before_close() -> None:
    """Traffic of open connections is included in ``stats()`` while they are still open."""
    hub = Hub()
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(echo_app(probe), hub=hub))
    sock.text("abc")
    assert (await sock.next_sent())["type"] == "websocket.accept"
    assert (await sock.next_sent())["text"] == "echo:abc"
    stats = hub.stats()
    assert (stats["messages_in"], stats["bytes_in"]) == (1, 3)
    assert (stats["messages_out"], stats["bytes_out"]) == (1, 8)
    sock.disconnect()
    await finish(task)


async def test_hub_services_start_on_first_connection() -> None:
    """Without lifespan the hub starts its services lazily on the first WebSocket."""
    hub = Hub()
    assert not hub.running
    sock = FakeSocket()
    sock.disconnect()
    await finish(sock.serve(StabilizerMiddleware(echo_app(Probe()), hub=hub)))
    assert hub.running
    await hub.stop()
    assert not hub.running
    assert "connections=0" in repr(hub)
