"""Time in the tests: the one time-scale constant, and bounded waits on the running loop.

Set ``STABILIZER_TEST_TIME_SCALE=3`` on a slow machine to stretch every interval, timeout and
margin in the wire tests by three. ``WAIT``, ``until`` and ``turns`` serve the in-memory tiers
(``tests/unit`` and ``tests/flow``) and are not scaled.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

SCALE = float(os.environ.get("STABILIZER_TEST_TIME_SCALE", "1"))

WAIT = 2.0
"""Upper bound on any single await; never reached when the code under test works."""


def t(seconds: float) -> float:
    """``seconds`` stretched by the time scale."""
    return seconds * SCALE


async def until(predicate: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Let the loop run until ``predicate`` holds; fail after ``within`` seconds.

    Mostly bare loop turns, with a short sleep now and then so that timers (the hub's
    reader check, a few milliseconds out) get their turn too.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    turn = 0
    while loop.time() < deadline:
        if predicate():
            return
        turn += 1
        await asyncio.sleep(0.001 if turn % 50 == 0 else 0)
    raise AssertionError(f"never happened: {what}")


async def turns(n: int = 20) -> None:
    """Let other tasks run ``n`` times (to show that something does *not* happen)."""
    for _ in range(n):
        await asyncio.sleep(0)
