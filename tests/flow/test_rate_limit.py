"""Inbound rate limit: 4429 through the middleware."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from asgi_ws_stabilizer import Hub

from ..timing import until
from .fakes import finish, record_app
from .served import end_all, serve

LIMITED = {"type": "websocket.disconnect", "code": 4429, "reason": "rate limit exceeded"}


async def test_rate_limit_is_off_by_default() -> None:
    """By default a client may send as fast as it likes: 300 messages at once all arrive."""
    hub = Hub()
    assert hub.settings.rate_limit is None
    one = await serve(hub, app=record_app)
    for n in range(300):
        one.sock.text(str(n))
    one.sock.disconnect()
    await finish(one.task)
    assert [m.get("text") for m in one.probe.received[:-1]] == [str(n) for n in range(300)]
    assert hub.stats()["rate_limited"] == 0


@pytest.mark.parametrize(
    ("rate_limit", "burst", "passed"),
    [(1.0, 5, 5), (2.5, None, 3), (100.0, 1, 1)],
    ids=["burst_5", "burst_from_rate", "burst_1"],
)
async def test_client_over_the_rate_limit_is_closed_4429(
    rate_limit: float, burst: int | None, passed: int
) -> None:
    """``rate_limit``/``rate_limit_burst``: after the burst the next message closes with 4429."""
    hub = Hub(rate_limit=rate_limit, rate_limit_burst=burst)
    one = await serve(hub, app=record_app)
    with capture_logs() as logs:
        for n in range(passed + 3):
            one.sock.text(str(n))
        await finish(one.task)
    assert one.probe.received == [
        *({"type": "websocket.receive", "text": str(n)} for n in range(passed)),
        LIMITED,
    ]
    assert one.sock.closes() == [
        {"type": "websocket.close", "code": 4429, "reason": "rate limit exceeded"}
    ]
    (event,) = [e for e in logs if e["event"] == "rate_limited"]
    assert event["log_level"] == "warning"
    assert (event["rate_limit"], event["burst"]) == (rate_limit, passed)
    stats = hub.stats()
    assert stats["rate_limited"] == 1
    assert stats["closes"] == {"4429": 1}
    assert stats["messages_in"] == passed


async def test_rate_limit_is_per_connection() -> None:
    """One client over its limit is closed; another client's bucket is untouched."""
    hub = Hub(rate_limit=1.0, rate_limit_burst=2)
    noisy = await serve(hub, app=record_app)
    quiet = await serve(hub, app=record_app)
    for n in range(3):
        noisy.sock.text(str(n))
    await finish(noisy.task)
    quiet.sock.text("a")
    quiet.sock.text("b")
    await until(lambda: len(quiet.probe.received) == 2, "the quiet client's two messages arrive")
    assert quiet.handle.state == "open"
    await end_all([quiet])


async def test_ping_flood_is_rate_limited() -> None:
    """A client flooding heartbeat pings is held to the rate limit like any other message."""
    hub = Hub(rate_limit=1.0, rate_limit_burst=2)
    one = await serve(hub, app=record_app)
    for _ in range(20):
        one.sock.text("ping")
    await until(lambda: bool(one.sock.closes()), "the flooding client is closed")
    assert one.sock.closes()[0]["code"] == 4429
    await end_all([one])
