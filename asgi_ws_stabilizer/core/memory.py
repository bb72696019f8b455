"""Memory accounting: deep sizes of user data, and the dict that keeps them up to date.

The seed library measured ``sys.getsizeof`` one level deep, so a 10 MB nested list counted as
1 kB. ``deep_size`` follows containers and objects all the way down (each object once, so cycles
and shared objects are safe). ``UserData`` measures a value when it is stored; a value mutated in
place afterwards is measured again by ``remeasure()``, which ``Hub.memory_usage()`` calls.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..errors import MemoryLimitExceededError, StateError

_ATOMIC = (str, bytes, bytearray, int, float, complex, bool, type(None), memoryview, range)


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes used by ``obj`` and everything it references (each object counted once)."""
    if seen is None:
        seen = set()
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        key = id(item)
        if key in seen:
            continue
        seen.add(key)
        total += sys.getsizeof(item)
        if isinstance(item, (*_ATOMIC, type)):
            continue
        if isinstance(item, Mapping):
            for k, v in item.items():
                stack.append(k)
                stack.append(v)
        elif isinstance(item, Collection):  # list, tuple, set, deque, array, ...
            stack.extend(item)
        else:
            attrs = getattr(item, "__dict__", None)
            if attrs is not None:
                stack.append(attrs)
            for cls in type(item).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if isinstance(slot, str) and hasattr(item, slot):
                        stack.append(getattr(item, slot))
    return total


class Meter:
    """Bytes held in outboxes and inboxes, shared by every connection of a hub."""

    __slots__ = ("inbox", "outbox", "user_data")

    def __init__(self) -> None:
        self.outbox = 0
        self.inbox = 0
        self.user_data = 0

    @property
    def total(self) -> int:
        """All accounted bytes."""
        return self.outbox + self.inbox + self.user_data


NO_SIZES: dict[str, int] = {}
"""The sizes of a ``UserData`` that has held nothing yet: shared, so never written to (``_set``
gives the data a dict of its own first). Most sockets store nothing: no empty dict each."""


class UserData(dict[str, Any]):
    """A dict whose deep size is accounted against memory limits.

    Subclasses say what the size means: ``_check(delta)`` is called before a write grows the
    total and raises ``MemoryLimitExceededError`` to refuse the write, which then stores
    nothing; ``_changed(delta)`` is told every change after it happened. (Methods, not
    callbacks handed in: a dict holding its own bound methods is a reference cycle, which only
    the garbage collector frees, once per connection.)
    """

    __slots__ = ("_sizes", "bytes")

    def __init__(self) -> None:
        super().__init__()
        self._sizes = NO_SIZES
        self.bytes = 0

    def _check(self, delta: int) -> None:
        """Raise ``MemoryLimitExceededError`` if ``delta`` more bytes are too many."""

    def _changed(self, delta: int) -> None:
        """The total changed by ``delta``."""

    def _measure(self, key: str, value: Any) -> int:
        return deep_size(key) + deep_size(value)

    def _set(self, key: str, value: Any, *, checked: bool = True) -> None:
        size = self._measure(key, value)
        sizes = self._sizes
        delta = size - sizes.get(key, 0)
        if checked and delta > 0:
            self._check(delta)
        super().__setitem__(key, value)
        if sizes is NO_SIZES:
            sizes = self._sizes = {}
        sizes[key] = size
        self.bytes += delta
        self._changed(delta)

    def __setitem__(self, key: str, value: Any) -> None:
        self._set(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._forget(key)

    def _forget(self, key: str) -> None:
        size = self._sizes.pop(key, 0)
        self.bytes -= size
        self._changed(-size)

    def setdefault(self, key: str, default: Any = None) -> Any:
        """As ``dict.setdefault``, accounted."""
        if key not in self:
            self._set(key, default)
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        """As ``dict.update``; all-or-nothing when a memory limit refuses the whole batch."""
        items = list(dict(*args, **kwargs).items())
        growth = sum(self._measure(k, v) - self._sizes.get(k, 0) for k, v in items)
        if growth > 0:
            self._check(growth)
        for key, value in items:
            self._set(key, value, checked=False)

    def __ior__(self, other: Any) -> UserData:  # type: ignore[override,misc]
        self.update(other)
        return self

    def pop(self, key: str, *default: Any) -> Any:
        """As ``dict.pop``, accounted."""
        if key in self:
            value = super().pop(key)
            self._forget(key)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, Any]:
        """As ``dict.popitem``, accounted."""
        key, value = super().popitem()
        self._forget(key)
        return key, value

    def clear(self) -> None:
        """As ``dict.clear``, accounted."""
        super().clear()
        self._sizes = NO_SIZES
        self._changed(-self.bytes)
        self.bytes = 0

    def restore(self, items: dict[str, Any]) -> None:
        """Put back a resumed session's data (measured, not refused: it was admitted before)."""
        for key, value in items.items():
            self._set(key, value, checked=False)

    def remeasure(self) -> int:
        """Measure every value again (catches in-place mutation); returns the new total."""
        sizes = {key: self._measure(key, value) for key, value in self.items()}
        total = sum(sizes.values())
        self._sizes = sizes
        self._changed(total - self.bytes)
        self.bytes = total
        return total

    def largest_keys(self, n: int = 5) -> list[tuple[str, int]]:
        """The ``n`` biggest keys and their sizes."""
        return sorted(self._sizes.items(), key=lambda kv: kv[1], reverse=True)[:n]


class ConnectionData(UserData):
    """One connection's user data: accounted in the hub's ``Meter`` (until ``release``) and
    kept within ``max_memory_per_connection``."""

    __slots__ = ("_grew", "_limit", "_meter", "_owner", "accounted")

    def __init__(
        self, meter: Meter, limit: int | None, grew: Callable[[], None], owner: str
    ) -> None:
        # UserData.__init__, inlined (one per socket); dict.__init__ with no items does nothing.
        self._sizes = NO_SIZES
        self.bytes = 0
        self._meter = meter
        self._limit = limit
        self._grew = grew
        self._owner = owner
        self.accounted = True
        """Whether it counts against ``max_total_memory`` (until the connection is shed or
        gone)."""

    def _check(self, delta: int) -> None:
        check_total(self.bytes, delta, self._limit, f"user_data of connection {self._owner}")

    def _changed(self, delta: int) -> None:
        if self.accounted:
            self._meter.user_data += delta
            if delta > 0:
                self._grew()

    def release(self) -> None:
        """Stop counting it: the connection was shed or is gone."""
        if self.accounted:
            self.accounted = False
            self._meter.user_data -= self.bytes


class _NoUserData(ConnectionData):
    """``NO_USER_DATA``: always empty; a write is a bug (the connection's own is made first)."""

    __slots__ = ()

    def _set(self, key: str, value: Any, *, checked: bool = True) -> None:
        raise StateError("NO_USER_DATA is shared and stays empty: make the connection's own first")


NO_USER_DATA: ConnectionData = _NoUserData(Meter(), None, lambda: None, "")
"""A connection's ``user_data`` until it is first used (hub/handle.py ``user_data_of``): most
sockets never store any, and an empty one would cost about 120 bytes each."""
NO_USER_DATA.accounted = False


def check_total(used: int, delta: int, limit: int | None, what: str) -> None:
    """Raise ``MemoryLimitExceededError`` if adding ``delta`` to ``used`` passes ``limit``."""
    if limit is not None and used + delta > limit:
        raise MemoryLimitExceededError(
            f"{what}: storing {delta} more bytes would use {used + delta} of {limit}",
            limit=limit,
            size=used + delta,
        )
