"""Traffic: the four counters of messages and bytes in and out, summed."""

from __future__ import annotations

from asgi_ws_stabilizer.observe.traffic import Traffic


def test_traffic_add() -> None:
    """Adding traffic sums each of the four counters."""
    total = Traffic(1, 2, 3, 4)
    total.add(Traffic(10, 20, 30, 40))
    assert total == Traffic(11, 22, 33, 44)
