"""One connection's user data: accounted in the hub's meter until released, kept under its limit."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.core.memory import ConnectionData, Meter, deep_size
from asgi_ws_stabilizer.errors import MemoryLimitExceededError


class Growth:
    """Counts ``grew`` calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def item(key: str, value: object) -> int:
    """Bytes one entry is accounted at."""
    return deep_size(key) + deep_size(value)


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
