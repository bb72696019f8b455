"""The connection state machine: the transitions a connection may make, and those it may not."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.core.state import TRANSITIONS, State, allowed

ALLOWED = [(old, new) for old, targets in TRANSITIONS.items() for new in targets]


def test_every_state_has_an_entry() -> None:
    """Every state names its transitions, so ``allowed`` never meets an unknown state."""
    assert set(TRANSITIONS) == set(State)


def test_the_transitions_are_the_documented_ones() -> None:
    """A connection opens or is refused, closes from open, and every path ends closed."""
    assert sorted((old.value, new.value) for old, new in ALLOWED) == sorted(
        [
            ("connecting", "open"),
            ("connecting", "refused"),
            ("connecting", "closed"),
            ("open", "closing"),
            ("open", "closed"),
            ("closing", "closed"),
            ("refused", "closed"),
        ]
    )


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_every_listed_transition_is_allowed(old: State, new: State) -> None:
    """Each transition in ``TRANSITIONS`` is allowed."""
    assert allowed(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [(old, new) for old in State for new in State if new not in TRANSITIONS[old]],
)
def test_every_unlisted_transition_is_refused(old: State, new: State) -> None:
    """Any transition not in ``TRANSITIONS`` is refused, staying put included."""
    assert not allowed(old, new)


@pytest.mark.parametrize("new", list(State))
def test_closed_is_final(new: State) -> None:
    """A closed connection goes nowhere, not even back to closed."""
    assert not allowed(State.CLOSED, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (State.OPEN, State.CONNECTING),
        (State.CLOSING, State.OPEN),
        (State.REFUSED, State.OPEN),
        (State.REFUSED, State.CLOSING),
        (State.CONNECTING, State.CLOSING),
    ],
)
def test_no_way_back(old: State, new: State) -> None:
    """An open socket is not connecting again, a closing or refused one does not (re)open, and a
    close is under way only once open."""
    assert not allowed(old, new)
