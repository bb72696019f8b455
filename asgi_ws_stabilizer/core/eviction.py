"""Which sockets ``max_total_memory`` sheds first, by ``memory_eviction_policy``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar


class Candidate(Protocol):
    """What the choice looks at."""

    @property
    def memory_used(self) -> int: ...
    @property
    def accepted_at(self) -> float | None: ...
    @property
    def last_active(self) -> float: ...


C = TypeVar("C", bound=Candidate)


def eviction_order(candidates: Iterable[C], policy: str) -> list[C]:
    """``candidates`` in the order they are shed: ``largest`` memory first, ``fifo`` (oldest
    accept first) or ``lru`` (least recently active first); ties keep the given order."""
    if policy == "largest":
        return sorted(candidates, key=lambda c: c.memory_used, reverse=True)
    if policy == "fifo":
        return sorted(candidates, key=lambda c: c.accepted_at or 0.0)
    return sorted(candidates, key=lambda c: c.last_active)
