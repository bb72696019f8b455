"""Counters behind ``Hub.stats()``: RTT figures and the JSON-ready snapshot."""

from __future__ import annotations

import json

import pytest

from asgi_ws_stabilizer import CloseCode
from asgi_ws_stabilizer.observe.stats import RttStats, Stats
from asgi_ws_stabilizer.observe.traffic import Traffic


def test_rtt_snapshot_empty() -> None:
    """Before any round trip every RTT figure is ``None``."""
    assert RttStats().snapshot() == {
        "samples": 0,
        "mean_ms": None,
        "min_ms": None,
        "max_ms": None,
        "last_ms": None,
    }


def test_rtt_snapshot_in_milliseconds() -> None:
    """Round trips are summarised as count, mean, min, max and last, in milliseconds."""
    rtt = RttStats()
    for seconds in (0.010, 0.030, 0.020):
        rtt.add(seconds)
    assert rtt.snapshot() == {
        "samples": 3,
        "mean_ms": pytest.approx(20.0),
        "min_ms": pytest.approx(10.0),
        "max_ms": pytest.approx(30.0),
        "last_ms": pytest.approx(20.0),
    }


def test_snapshot_adds_live_traffic_and_is_json() -> None:
    """The snapshot adds open connections' traffic to finished traffic and is JSON-ready."""
    stats = Stats()
    stats.finished_traffic.add(Traffic(1, 1, 10, 10))
    snapshot = stats.snapshot(3, Traffic(2, 0, 5, 0))
    assert snapshot["connections"] == 3
    assert (snapshot["messages_in"], snapshot["bytes_in"]) == (3, 15)
    assert (snapshot["messages_out"], snapshot["bytes_out"]) == (1, 10)
    json.dumps(snapshot)


def test_close_codes_keyed_by_number() -> None:
    """Close counts are keyed by the numeric code, whether it came as int or ``CloseCode``."""
    stats = Stats()
    stats.closes[CloseCode.NORMAL] += 1
    stats.closes[1000] += 1
    stats.closes[4408] += 1
    assert stats.snapshot(0, Traffic())["closes"] == {"1000": 2, "4408": 1}
