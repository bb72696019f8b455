"""The slow-consumer decision: what a hub frame that does not fit a socket's outbox becomes."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.core.backpressure import Overflow, on_overflow

POLICIES = ["close", "drop_oldest", "drop_newest"]


@pytest.mark.parametrize("policy", POLICIES)
def test_a_frame_that_fits_is_queued(policy: str) -> None:
    """A frame that fits is queued whatever the policy."""
    assert on_overflow(10, 20, 100, policy, resumable=False) == (Overflow.QUEUE, 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_frame_exactly_at_the_limit_is_queued(policy: str) -> None:
    """Filling the outbox to the byte is not an overflow; one byte more is."""
    assert on_overflow(60, 40, 100, policy, resumable=False) == (Overflow.QUEUE, 0)
    assert on_overflow(60, 41, 100, policy, resumable=False)[0] is not Overflow.QUEUE


@pytest.mark.parametrize("resumable", [False, True])
def test_no_limit_queues_everything(resumable: bool) -> None:
    """Without ``max_send_queue`` any frame is queued, however much waits."""
    assert on_overflow(10**9, 10**9, None, "close", resumable=resumable) == (Overflow.QUEUE, 0)


def test_close_policy_closes() -> None:
    """Under ``close`` an overflowing frame closes the socket."""
    assert on_overflow(90, 20, 100, "close", resumable=False) == (Overflow.CLOSE, 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_resumable_socket_is_always_closed(policy: str) -> None:
    """A resumable socket is always closed, never dropped from."""
    assert on_overflow(90, 20, 100, policy, resumable=True) == (Overflow.CLOSE, 0)


@pytest.mark.parametrize(
    ("queued", "size", "to_free"),
    [(90, 20, 10), (100, 1, 1), (100, 100, 100), (50, 60, 10)],
)
def test_drop_oldest_makes_exactly_the_room_needed(queued: int, size: int, to_free: int) -> None:
    """Under ``drop_oldest`` the frame asks for the bytes that bring the outbox back to the
    limit with it queued."""
    assert on_overflow(queued, size, 100, "drop_oldest", resumable=False) == (
        Overflow.MAKE_ROOM,
        to_free,
    )


@pytest.mark.parametrize("queued", [0, 50])
def test_drop_oldest_drops_a_frame_larger_than_the_limit(queued: int) -> None:
    """A frame that could never fit is dropped rather than emptying the outbox for nothing."""
    assert on_overflow(queued, 101, 100, "drop_oldest", resumable=False) == (Overflow.DROP, 0)


def test_drop_newest_drops_the_frame() -> None:
    """Under ``drop_newest`` the overflowing frame itself is dropped."""
    assert on_overflow(90, 20, 100, "drop_newest", resumable=False) == (Overflow.DROP, 0)
