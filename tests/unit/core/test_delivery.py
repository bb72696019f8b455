"""Hub sends: whom they leave out, whom they are for, and how their outcomes add up."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from asgi_ws_stabilizer.core.delivery import (
    EVERYONE,
    BroadcastResult,
    Delivery,
    Target,
    exclusion,
)


@dataclass(frozen=True)
class Handle:
    """Handle-like: anything with a ``connection_id``."""

    connection_id: str


class Named:
    """Neither a str nor a handle: excluded by its ``str()``."""

    def __str__(self) -> str:
        return "named-id"


# -- exclusion ----------------------------------------------------------------------------------


def test_no_exclusion_excludes_nothing() -> None:
    """``None`` leaves no one out."""
    assert exclusion(None) == frozenset()


def test_a_string_is_one_id_not_its_characters() -> None:
    """A single id is excluded whole, not as an iterable of characters."""
    assert exclusion("abc") == frozenset({"abc"})


def test_a_handle_is_excluded_by_its_connection_id() -> None:
    """A handle stands for its connection id."""
    assert exclusion(Handle("c-1")) == frozenset({"c-1"})


def test_an_iterable_mixes_ids_and_handles() -> None:
    """A list of ids and handles gives every id, handles by their connection ids."""
    assert exclusion(["client-a", Handle("c-1"), "c-2", Handle("c-3")]) == frozenset(
        {"client-a", "c-1", "c-2", "c-3"}
    )


def test_an_iterable_is_read_once() -> None:
    """A generator is excluded in full (it is consumed once)."""
    assert exclusion(x for x in ("a", "b")) == frozenset({"a", "b"})


def test_another_item_is_excluded_by_its_str() -> None:
    """An item that is neither a str nor a handle is turned into its ``str()``."""
    assert exclusion([Named(), "x"]) == frozenset({"named-id", "x"})  # type: ignore[list-item]


# -- BroadcastResult ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Delivery.QUEUED, (1, 1, 0, 0)),
        (Delivery.QUEUED_AFTER_DROP, (1, 1, 1, 0)),
        (Delivery.DROPPED, (1, 0, 1, 0)),
        (Delivery.CLOSED, (1, 0, 0, 1)),
        (Delivery.SKIPPED, (1, 0, 0, 0)),
    ],
)
def test_count_adds_one_outcome(outcome: Delivery, expected: tuple[int, int, int, int]) -> None:
    """Each outcome is targeted, and counted as queued, dropped or closed as it says."""
    result = BroadcastResult()
    result.count(outcome)
    assert (result.targeted, result.queued, result.dropped, result.closed) == expected


def test_count_accumulates() -> None:
    """Outcomes of many sockets add up."""
    result = BroadcastResult()
    for outcome in [
        Delivery.QUEUED,
        Delivery.QUEUED,
        Delivery.QUEUED_AFTER_DROP,
        Delivery.DROPPED,
        Delivery.CLOSED,
        Delivery.SKIPPED,
    ]:
        result.count(outcome)
    assert result == BroadcastResult(targeted=6, queued=3, dropped=2, closed=1)


# -- Target -------------------------------------------------------------------------------------


def test_targets_compare_by_value() -> None:
    """Two targets for the same group are equal and hash alike; kind and name both count."""
    assert Target("group", "room") == Target("group", "room")
    assert hash(Target("group", "room")) == hash(Target("group", "room"))
    assert Target("group", "room") != Target("client", "room")
    assert Target("group", "room") != Target("group", "hall")
    assert Target("all") == EVERYONE
    assert EVERYONE.name == ""


def test_a_target_is_frozen() -> None:
    """A target cannot be changed once made (a send's target is shared)."""
    target = Target("client", "c-1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.name = "c-2"  # type: ignore[misc]
    assert target.name == "c-1"
