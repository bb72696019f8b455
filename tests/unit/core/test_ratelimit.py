"""Inbound rate limit: the token bucket with explicit times."""

from __future__ import annotations

from asgi_ws_stabilizer.core.ratelimit import TokenBucket


def test_bucket_allows_a_full_burst_then_refuses() -> None:
    """A new bucket holds ``burst`` tokens; one more message at the same instant is refused."""
    bucket = TokenBucket(rate=2.0, burst=3, now=100.0)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_its_rate() -> None:
    """Tokens come back at ``rate`` per second; half a token is not enough."""
    bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
    assert bucket.allow(0.0)
    assert not bucket.allow(0.125)
    assert bucket.allow(0.25)
    assert not bucket.allow(0.25)
    assert bucket.allow(0.5)


def test_bucket_saves_up_at_most_burst() -> None:
    """After a long quiet spell only ``burst`` messages go through at once."""
    bucket = TokenBucket(rate=4.0, burst=3, now=0.0)
    for _ in range(3):
        assert bucket.allow(0.0)
    assert [bucket.allow(1000.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_below_one_message_per_second() -> None:
    """A rate of 0.5/s lets one message through every two seconds."""
    bucket = TokenBucket(rate=0.5, burst=1, now=0.0)
    assert bucket.allow(0.0)
    assert not bucket.allow(1.0)
    assert bucket.allow(2.0)
    assert not bucket.allow(3.0)


def test_bucket_ignores_a_clock_going_back() -> None:
    """A ``now`` earlier than the last one refills nothing and does not move the bucket back."""
    bucket = TokenBucket(rate=4.0, burst=1, now=10.0)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)
    assert bucket.updated == 10.0
    assert bucket.allow(10.25)
