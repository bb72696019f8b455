"""Drain: tell every client when to come back, close them all at bounded parallelism, and do it
*before* the server's own shutdown.

uvicorn closes every WebSocket with 1012 before ``lifespan.shutdown`` (reference/asgi-facts.md
2.3), so a drain that waits for lifespan finds nothing left: it also runs on SIGTERM/SIGINT,
chained in front of the server's handler (aio/signals.py). What it reports and when each client
comes back are decided in core/drain.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..aio.connection import Connection
from ..core.drain import ShutdownReport, spread_delays
from ..core.messages import payload_size
from ..core.state import State
from ..resume.resumption import control_frame
from .services import Services


async def drain(
    services: Services, *, code: int, reason: str, timeout: float, spread: float
) -> ShutdownReport:
    """Notify opted-in sockets, close every open one, and wait up to ``timeout`` for the
    handlers to finish (admission is paused by the caller)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    targets = [c for c in services.registry if c.state is State.OPEN]
    opted = [c for c in targets if c.session is not None]
    # Their user data where another process finds it, before their clients are told to go.
    await services.binder.save_now(opted)
    notified = _notify(opted, services, spread)
    closing = [c for c in targets if c.shed(code, reason, discard=False)]
    services.log.info("drain_started", sockets=len(closing), notified=notified, code=code)
    deadline = started + timeout
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(services.send_closes(closing), max(0.0, deadline - loop.time()))
        if len(services.registry):
            services.emptied = asyncio.Event()
            await asyncio.wait_for(services.emptied.wait(), max(0.0, deadline - loop.time()))
    report = ShutdownReport(
        closed=sum(1 for c in closing if c.gate.close_written),
        failed=sum(1 for c in closing if not c.gate.close_written),
        timed_out=len(services.registry),
        notified=notified,
        duration=round(loop.time() - started, 3),
    )
    services.log.info("drain_finished", **vars(report))
    return report


def _notify(opted: list[Connection], services: Services, spread: float) -> int:
    """Send each opted-in socket a ``drain`` frame with its own retry time and a fresh token."""
    notified = 0
    now = time.time()
    for connection, delay in zip(opted, spread_delays(len(opted), spread), strict=True):
        session = connection.session
        if session is None:
            continue
        frame = control_frame(
            "drain",
            retry_after_ms=delay,
            token=services.binder.resumption.token(session, now),
        )
        if connection.gate.send_nowait(frame, payload_size(frame)):
            notified += 1
    return notified
