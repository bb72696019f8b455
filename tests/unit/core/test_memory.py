"""Memory: deep sizes, accounted user data, and one connection's data in the hub's meter.

One connection's user data (``ConnectionData``): accounted in the hub's meter until released,
kept under its limit.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import pytest

from asgi_ws_stabilizer.core.memory import NO_SIZES, ConnectionData, Meter, UserData, deep_size
from asgi_ws_stabilizer.errors import MemoryLimitExceededError


def item(key: str, value: object) -> int:
    """Bytes one ``user_data`` entry is accounted at."""
    return deep_size(key) + deep_size(value)


# -- deep_size ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["text", b"bytes", 10**30, 1.5, None, True, bytearray(b"abc")])
def test_deep_size_of_an_atomic_value_is_its_own_size(value: object) -> None:
    """A string, number, bytes or ``None`` is measured by ``sys.getsizeof`` alone."""
    assert deep_size(value) == sys.getsizeof(value)


def test_deep_size_follows_nested_containers() -> None:
    """Lists, tuples, sets and dicts are followed to the bottom, keys and values both."""
    blob = b"x" * 10_000
    nested: dict[str, Any] = {"a": [("t", blob)], "s": {frozenset({"f"})}}
    expected = (
        sys.getsizeof(nested)
        + sys.getsizeof("a")
        + sys.getsizeof(nested["a"])
        + sys.getsizeof(nested["a"][0])
        + sys.getsizeof("t")
        + sys.getsizeof(blob)
        + sys.getsizeof("s")
        + sys.getsizeof(nested["s"])
        + sys.getsizeof(frozenset({"f"}))
        + sys.getsizeof("f")
    )
    assert deep_size(nested) == expected
    assert deep_size([[[blob]]]) > 10_000 > sys.getsizeof([[[blob]]])


def test_deep_size_counts_shared_objects_once_and_survives_cycles() -> None:
    """An object reachable twice counts once; a container that holds itself is measured."""
    shared = "s" * 1000
    twice = [shared, shared]
    assert deep_size(twice) == sys.getsizeof(twice) + sys.getsizeof(shared)
    loop: list[Any] = []
    loop.append(loop)
    assert deep_size(loop) == sys.getsizeof(loop)
    a: dict[str, Any] = {}
    b: dict[str, Any] = {"a": a}
    a["b"] = b
    expected = sys.getsizeof(a) + sys.getsizeof("b") + sys.getsizeof(b) + sys.getsizeof("a")
    assert deep_size(a) == expected


def test_deep_size_follows_object_attributes_and_slots() -> None:
    """Objects are measured with their ``__dict__`` or ``__slots__`` values; classes are not."""

    class Plain:
        def __init__(self) -> None:
            self.payload = "p" * 500

    class Slotted:
        __slots__ = ("empty", "payload")

        def __init__(self) -> None:
            self.payload = "q" * 500

    plain = Plain()
    assert deep_size(plain) == sys.getsizeof(plain) + deep_size(plain.__dict__)
    slotted = Slotted()
    assert deep_size(slotted) == sys.getsizeof(slotted) + sys.getsizeof(slotted.payload)
    assert deep_size(Plain) == sys.getsizeof(Plain)


def test_deep_size_follows_a_deque() -> None:
    """A ``deque`` is a container: its items are measured too."""
    blob = b"x" * 100_000
    history = deque([blob])
    assert deep_size(history) == sys.getsizeof(history) + sys.getsizeof(blob)


# -- UserData -----------------------------------------------------------------------------------


class Ledger:
    """The two callbacks of a ``UserData``: a limit on the total and a record of every change."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.changes: list[int] = []

    def check(self, delta: int) -> None:
        if self.limit is not None and self.used + delta > self.limit:
            raise MemoryLimitExceededError("over", limit=self.limit, size=self.used + delta)

    def changed(self, delta: int) -> None:
        self.used += delta
        self.changes.append(delta)

    def data(self) -> UserData:
        ledger = self

        class Recorded(UserData):
            def _check(self, delta: int) -> None:
                ledger.check(delta)

            def _changed(self, delta: int) -> None:
                ledger.changed(delta)

        return Recorded()


def test_user_data_set_overwrite_and_delete_are_accounted() -> None:
    """Setting, replacing and deleting keys keep ``bytes`` equal to the entries' deep sizes."""
    ledger = Ledger()
    data = ledger.data()
    data["name"] = "alice"
    data["tags"] = ["a", "b"]
    assert data.bytes == item("name", "alice") + item("tags", ["a", "b"])
    data["name"] = "a much longer name than before"
    assert data.bytes == item("name", "a much longer name than before") + item("tags", ["a", "b"])
    del data["tags"]
    assert data.bytes == item("name", "a much longer name than before")
    with pytest.raises(KeyError):
        del data["tags"]
    assert ledger.used == data.bytes
    assert sum(ledger.changes) == data.bytes


def test_user_data_pop_popitem_setdefault_clear() -> None:
    """``pop``, ``popitem``, ``setdefault`` and ``clear`` behave as on a dict, accounted."""
    ledger = Ledger()
    data = ledger.data()
    data["a"] = "x" * 100
    data["b"] = [1, 2, 3]
    assert data.pop("a") == "x" * 100
    assert data.bytes == item("b", [1, 2, 3])
    assert data.pop("a", None) is None
    assert data.pop("a", "fallback") == "fallback"
    with pytest.raises(KeyError):
        data.pop("a")
    assert data.popitem() == ("b", [1, 2, 3])
    assert data.bytes == 0
    assert data.setdefault("c", "first") == "first"
    assert data.setdefault("c", "second" * 100) == "first"
    assert data.bytes == item("c", "first")
    data["d"] = {"nested": ["deep"]}
    data.clear()
    assert data == {}
    assert data.bytes == 0
    assert ledger.used == 0


def test_user_data_update_and_in_place_or() -> None:
    """``update`` (mapping, pairs, keywords) and ``|=`` store and account every entry."""
    ledger = Ledger()
    data = ledger.data()
    data.update({"a": "1"}, b="22")
    data.update([("c", "333")])
    data |= {"d": "4444", "a": "replaced"}
    assert data == {"a": "replaced", "b": "22", "c": "333", "d": "4444"}
    assert data.bytes == sum(item(k, v) for k, v in data.items())
    assert ledger.used == data.bytes


def test_user_data_refused_write_stores_nothing() -> None:
    """A write the limit refuses raises and leaves keys, sizes and the total untouched."""
    small = item("a", "x")
    ledger = Ledger(limit=small + item("b", "y"))
    data = ledger.data()
    data["a"] = "x"
    big = "z" * 1000
    for write in (
        lambda: data.__setitem__("b", big),
        lambda: data.setdefault("b", big),
        lambda: data.update({"b": "y", "c": big}),
        lambda: data.__ior__({"b": "y", "c": big}),
        lambda: data.__setitem__("a", big),
    ):
        with pytest.raises(MemoryLimitExceededError):
            write()
        assert data == {"a": "x"}
        assert data.bytes == ledger.used == small
    data["b"] = "y"
    assert data.bytes == ledger.limit


def test_user_data_remeasure_catches_in_place_mutation() -> None:
    """``remeasure`` picks up a value grown in place and reports the new total."""
    ledger = Ledger()
    data = ledger.data()
    data["log"] = []
    data["name"] = "n"
    data["log"].extend(["entry"] * 100)
    assert data.bytes == item("log", []) + item("name", "n")
    expected = item("log", data["log"]) + item("name", "n")
    assert data.remeasure() == expected
    assert data.bytes == ledger.used == expected
    assert data.largest_keys(1) == [("log", item("log", data["log"]))]


# -- ConnectionData -----------------------------------------------------------------------------


class Growth:
    """Counts ``grew`` calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def make(limit: int | None = None) -> tuple[ConnectionData, Meter, Growth]:
    """A connection's data on a fresh meter."""
    meter = Meter()
    grew = Growth()
    return ConnectionData(meter, limit, grew, "conn-7"), meter, grew


def test_a_write_is_accounted_in_the_meter() -> None:
    """Stored bytes show in the meter's ``user_data`` and total, and in the data's own bytes."""
    data, meter, _ = make()
    data["k"] = "v" * 100
    assert meter.user_data == item("k", "v" * 100)
    assert meter.total == meter.user_data
    assert data.bytes == meter.user_data


def test_grew_is_called_only_when_growing() -> None:
    """A write that grows calls ``grew``; shrinking or deleting does not."""
    data, meter, grew = make()
    data["k"] = "v" * 100
    assert grew.calls == 1
    data["k"] = "v"
    assert grew.calls == 1
    assert meter.user_data == item("k", "v")
    del data["k"]
    assert grew.calls == 1
    assert meter.user_data == 0


def test_a_write_over_the_limit_is_refused_and_names_the_owner() -> None:
    """A write past ``limit`` raises naming the connection, and stores and accounts nothing."""
    limit = item("a", "x") + 10
    data, meter, grew = make(limit)
    data["a"] = "x"
    before = meter.user_data
    with pytest.raises(MemoryLimitExceededError, match="conn-7") as caught:
        data["b"] = "y" * 1000
    assert caught.value.limit == limit
    assert caught.value.size == before + item("b", "y" * 1000)
    assert "b" not in data
    assert meter.user_data == before
    assert data.bytes == before
    assert grew.calls == 1


def test_a_write_exactly_at_the_limit_is_stored() -> None:
    """Reaching the limit to the byte is allowed."""
    data, meter, _ = make(item("a", "x"))
    data["a"] = "x"
    assert meter.user_data == item("a", "x")


def test_release_takes_the_bytes_off_once() -> None:
    """``release`` takes the data's bytes off the meter; a second release changes nothing."""
    data, meter, _ = make()
    meter.user_data = 1000  # another connection's data
    data["k"] = "v" * 50
    assert data.accounted
    data.release()
    assert not data.accounted
    assert meter.user_data == 1000
    data.release()
    assert meter.user_data == 1000


def test_writes_after_release_are_not_accounted() -> None:
    """Once released, writes and deletes leave the meter and ``grew`` alone, but the data keeps
    its own count."""
    data, meter, grew = make()
    data["k"] = "v"
    data.release()
    calls = grew.calls
    data["more"] = "w" * 100
    del data["k"]
    assert meter.user_data == 0
    assert grew.calls == calls
    assert data.bytes == item("more", "w" * 100)


def test_data_that_never_held_anything_share_no_sizes() -> None:
    """Two sockets' data start on the shared empty sizes; the first write gives each its own,
    and clearing goes back to the shared one, which stays empty."""
    first, _, _ = make()
    second, _, _ = make()
    first["k"] = "v"
    assert "k" not in second
    second["k"] = "vv"
    del first["k"]
    assert first.bytes == 0
    assert second.bytes == item("k", "vv")
    second.clear()
    first.update({"a": 1, "b": 2})
    assert first.bytes == item("a", 1) + item("b", 2)
    assert second.bytes == 0
    assert NO_SIZES == {}
