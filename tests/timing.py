"""The one time-scale constant for real-time tests.

Set ``STABILIZER_TEST_TIME_SCALE=3`` on a slow machine to stretch every interval, timeout and
margin in the wire tests by three.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("STABILIZER_TEST_TIME_SCALE", "1"))


def t(seconds: float) -> float:
    """``seconds`` stretched by the time scale."""
    return seconds * SCALE
