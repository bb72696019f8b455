"""Which sockets ``max_total_memory`` sheds first, for each ``memory_eviction_policy``."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from asgi_ws_stabilizer.core.eviction import eviction_order


@dataclass(frozen=True)
class Cand:
    """A socket as the eviction order sees it."""

    name: str
    memory_used: int = 0
    accepted_at: float | None = 0.0
    last_active: float = 0.0


def names(cands: list[Cand]) -> list[str]:
    """The names, in order."""
    return [c.name for c in cands]


def test_largest_sheds_the_biggest_first() -> None:
    """``largest`` orders by memory used, most first."""
    cands = [Cand("a", memory_used=10), Cand("b", memory_used=300), Cand("c", memory_used=20)]
    assert names(eviction_order(cands, "largest")) == ["b", "c", "a"]


def test_fifo_sheds_the_oldest_accept_first() -> None:
    """``fifo`` orders by accept time, earliest first."""
    cands = [Cand("a", accepted_at=5.0), Cand("b", accepted_at=1.0), Cand("c", accepted_at=3.0)]
    assert names(eviction_order(cands, "fifo")) == ["b", "c", "a"]


def test_fifo_counts_a_socket_never_accepted_as_oldest() -> None:
    """A ``None`` accept time counts as 0, before any real accept time."""
    cands = [Cand("a", accepted_at=2.0), Cand("b", accepted_at=None), Cand("c", accepted_at=1.0)]
    assert names(eviction_order(cands, "fifo")) == ["b", "c", "a"]


def test_lru_sheds_the_least_recently_active_first() -> None:
    """``lru`` orders by last activity, stalest first."""
    cands = [Cand("a", last_active=9.0), Cand("b", last_active=4.0), Cand("c", last_active=7.0)]
    assert names(eviction_order(cands, "lru")) == ["b", "c", "a"]


@pytest.mark.parametrize("policy", ["largest", "fifo", "lru"])
def test_ties_keep_the_given_order(policy: str) -> None:
    """Candidates equal under the policy stay in the order given, for every policy."""
    cands = [
        Cand("d", memory_used=5, accepted_at=1.0, last_active=1.0),
        Cand("b", memory_used=5, accepted_at=1.0, last_active=1.0),
        Cand("c", memory_used=5, accepted_at=1.0, last_active=1.0),
        Cand("a", memory_used=5, accepted_at=1.0, last_active=1.0),
    ]
    assert names(eviction_order(cands, policy)) == ["d", "b", "c", "a"]
    assert names(eviction_order(reversed(cands), policy)) == ["a", "c", "b", "d"]


def test_fifo_ties_none_with_zero_in_the_given_order() -> None:
    """A ``None`` accept time ties with 0.0 and keeps its place among them."""
    cands = [Cand("z", accepted_at=0.0), Cand("n", accepted_at=None), Cand("late", accepted_at=1.0)]
    assert names(eviction_order(cands, "fifo")) == ["z", "n", "late"]


def test_each_policy_reads_only_its_own_key() -> None:
    """The same sockets come out in a different order under each policy."""
    cands = [
        Cand("a", memory_used=1, accepted_at=2.0, last_active=3.0),
        Cand("b", memory_used=2, accepted_at=3.0, last_active=1.0),
        Cand("c", memory_used=3, accepted_at=1.0, last_active=2.0),
    ]
    assert names(eviction_order(cands, "largest")) == ["c", "b", "a"]
    assert names(eviction_order(cands, "fifo")) == ["c", "a", "b"]
    assert names(eviction_order(cands, "lru")) == ["b", "c", "a"]
