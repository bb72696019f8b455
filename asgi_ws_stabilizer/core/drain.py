"""Drain decisions: what a drain reports, and when each client is told to come back.

The drain itself (hub/drain.py) tells every opted-in client when to return and closes the
sockets; this module holds the parts that decide, with no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ShutdownReport:
    """What a drain did."""

    closed: int
    """Sockets whose close frame was written."""
    failed: int
    """Sockets that were gone before their close frame could be written."""
    timed_out: int
    """Sockets still registered (handler not finished) when the deadline passed."""
    notified: int
    """Opted-in sockets that got a ``drain`` control frame with their own retry time."""
    duration: float
    """Seconds the drain took."""


def spread_delays(count: int, window: float, rng: random.Random | None = None) -> list[int]:
    """``count`` retry delays in milliseconds, spread uniformly over ``window`` seconds.

    Stratified: one random point in each of ``count`` equal slices of the window, shuffled, so a
    thousand clients do not come back in the same second and no two slices crowd.
    """
    rng = rng or random.Random()
    if count <= 0:
        return []
    step = window * 1000 / count
    delays = [int((i + rng.random()) * step) for i in range(count)]
    rng.shuffle(delays)
    return delays
