"""Metrics through a hub: what the events feed, the periodic copy of the per-message counts, the
fan-out timing that runs only with metrics on, and the copy at stop."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from asgi_ws_stabilizer import Hub
from asgi_ws_stabilizer.hub import services

from ..timing import until
from .fakes import echo_app, finish
from .served import serve


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(f"asgi_ws_{name}", labels)
    return 0.0 if found is None else found


async def test_a_connection_counts_in_every_metric_it_touches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "SAMPLE_EVERY", 0.02)
    hub = Hub(enable_metrics=True, heartbeat_interval=None)
    assert hub.events.sampling
    before = {
        "open": value("connections"),
        "accepted": value("connections_accepted_total"),
        "in": value("messages_total", direction="in"),
        "out": value("messages_total", direction="out"),
        "bytes_in": value("payload_bytes_total", direction="in"),
        "closed": value("connections_closed_total", code="other", closed_by="client"),
        "broadcasts": value("sends_total", kind="broadcast"),
        "fanouts": value("fanout_duration_seconds_count", kind="broadcast"),
        "durations": value("connection_duration_seconds_count"),
    }
    await hub.start()
    try:
        served = await serve(hub, app=echo_app)
        assert value("connections") == before["open"] + 1
        assert value("connections_accepted_total") == before["accepted"] + 1
        for text in ("a", "bb", "ccc"):
            served.sock.text(text)
        await until(lambda: len(served.sock.sent_texts()) == 3, "three echoes")
        await hub.broadcast("news")
        assert value("sends_total", kind="broadcast") == before["broadcasts"] + 1
        assert value("fanout_duration_seconds_count", kind="broadcast") == before["fanouts"] + 1
        # The socket is still open: the periodic copy brings its counts over.
        await until(
            lambda: value("messages_total", direction="out") == before["out"] + 4, "copied out"
        )
        assert value("messages_total", direction="in") == before["in"] + 3
        assert value("payload_bytes_total", direction="in") == before["bytes_in"] + 6
        served.sock.disconnect(4321)
        await finish(served.task)
    finally:
        await hub.stop()
    assert value("connections") == before["open"]
    assert value("connections_closed_total", code="other", closed_by="client") == (
        before["closed"] + 1
    )
    assert value("connection_duration_seconds_count") == before["durations"] + 1


async def test_the_last_counts_are_copied_at_stop() -> None:
    """Counts made after the last periodic copy still arrive: ``stop`` copies once more."""
    hub = Hub(enable_metrics=True, heartbeat_interval=None)
    before = value("messages_total", direction="in")
    await hub.start()
    try:
        served = await serve(hub, app=echo_app)
        served.sock.text("x")
        await until(lambda: len(served.sock.sent_texts()) == 1, "the echo")
        served.sock.disconnect()
        await finish(served.task)
    finally:
        await hub.stop()
    assert value("messages_total", direction="in") == before + 1


async def test_metrics_off_times_nothing_and_copies_nothing() -> None:
    hub = Hub(heartbeat_interval=None)
    assert not hub.events.sampling
    fanouts = value("fanout_duration_seconds_count", kind="broadcast")
    await hub.start()
    try:
        served = await serve(hub, app=echo_app)
        await hub.broadcast("news")
        await until(lambda: served.sock.sent_texts() == ["news"], "the broadcast")
        served.sock.disconnect()
        await finish(served.task)
    finally:
        await hub.stop()
    assert value("fanout_duration_seconds_count", kind="broadcast") == fanouts
