"""Drain: retry times spread over the window."""

from __future__ import annotations

import random

from asgi_ws_stabilizer.core.drain import spread_delays


def test_spread_covers_the_window_once_per_slice() -> None:
    """N delays fall one in each of N equal slices of the window, in random order."""
    delays = spread_delays(10, 2.0, random.Random(7))
    assert sorted(d // 200 for d in delays) == list(range(10))
    assert delays != sorted(delays)
    assert spread_delays(0, 2.0) == []
