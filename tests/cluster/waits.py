"""Bounded waits on the cluster: retry a check until it passes or its time is up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[None]], within: float, interval: float = 0.02
) -> float:
    """Run ``check`` until it stops raising ``AssertionError``; the seconds that took.

    One attempt that hangs counts as failed once ``within`` has passed. After ``within`` seconds
    the last ``AssertionError`` is raised, saying how long it waited.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        left = start + within - loop.time()
        try:
            await asyncio.wait_for(check(), max(left, interval))
        except (AssertionError, asyncio.TimeoutError) as exc:
            if loop.time() - start >= within:
                failure = exc if isinstance(exc, AssertionError) else "the check hung"
                raise AssertionError(f"not within {within:.2f} s: {failure}") from exc
        else:
            return loop.time() - start
        await asyncio.sleep(interval)
