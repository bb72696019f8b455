"""The registry: every admitted connection of this process, by id, client id and address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Entry(Protocol):
    """What the registry needs to know of a connection."""

    @property
    def connection_id(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def remote_ip(self) -> str: ...

    groups: frozenset[str]
    """The groups it is in: replaced (never changed in place) by ``join`` and ``leave``, and
    ``frozenset()``, shared, while it is in none (most sockets: no empty set each)."""


E = TypeVar("E", bound=Entry)


class Changes(Protocol):
    """Who hears of every change to the registry (the backend, for cluster-wide presence)."""

    def added(self, connection_id: str, client_id: str) -> None: ...
    def removed(self, connection_id: str, client_id: str) -> None: ...
    def joined(self, connection_id: str, client_id: str, group: str) -> None: ...
    def left(self, connection_id: str, client_id: str, group: str) -> None: ...
    def renamed(self, connection_id: str, old_client_id: str, client_id: str) -> None: ...


class Registry(Generic[E]):
    """Connections indexed three ways; adding and removing are O(1) and idempotent.

    A connection is in the registry from admission (before the app runs, so that concurrent
    handshakes cannot overshoot a limit) until its peer leaves or its handler ends.
    """

    def __init__(self) -> None:
        self.changes: Changes | None = None
        """Told of every change, once set."""
        self._by_id: dict[str, E] = {}
        # A client's one socket itself, or a dict of its sockets by id when it has several:
        # most clients have one, and a dict each would cost about 200 bytes per socket.
        self._by_client: dict[str, E | dict[str, E]] = {}
        self._per_ip: dict[str, int] = {}
        self._groups: dict[str, dict[str, E]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[E]:
        return iter(self.snapshot())

    def snapshot(self) -> list[E]:
        """Every registered connection, as a list that later changes do not touch."""
        return list(self._by_id.values())

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._by_id

    def get(self, connection_id: str) -> E | None:
        """The connection with this id, if registered."""
        return self._by_id.get(connection_id)

    def add(self, entry: E) -> None:
        """Register ``entry`` (again is a no-op)."""
        if entry.connection_id in self._by_id:
            return
        self._by_id[entry.connection_id] = entry
        self._file(entry, entry.client_id)
        per_ip = self._per_ip
        per_ip[entry.remote_ip] = per_ip.get(entry.remote_ip, 0) + 1
        if self.changes is not None:
            self.changes.added(entry.connection_id, entry.client_id)

    def remove(self, entry: E) -> bool:
        """Unregister ``entry``; returns ``False`` when it was not registered (or was replaced)."""
        if self._by_id.get(entry.connection_id) is not entry:
            return False
        del self._by_id[entry.connection_id]
        self._unfile(entry, entry.client_id)
        per_ip = self._per_ip
        left = per_ip.get(entry.remote_ip, 0) - 1
        if left > 0:
            per_ip[entry.remote_ip] = left
        else:
            per_ip.pop(entry.remote_ip, None)
        for group in entry.groups:  # leave replaces it: this one stays as it is
            self.leave(entry, group)
        if self.changes is not None:
            self.changes.removed(entry.connection_id, entry.client_id)
        return True

    def rekey(self, entry: E, old_client_id: str) -> None:
        """File a registered ``entry`` under its new ``client_id`` (it was ``old_client_id``)."""
        if self._by_id.get(entry.connection_id) is not entry or old_client_id == entry.client_id:
            return
        self._unfile(entry, old_client_id)
        self._file(entry, entry.client_id)
        if self.changes is not None:
            self.changes.renamed(entry.connection_id, old_client_id, entry.client_id)

    def _file(self, entry: E, client_id: str) -> None:
        by_client = self._by_client
        held = by_client.get(client_id)
        if held is None:
            by_client[client_id] = entry
        elif isinstance(held, dict):
            held[entry.connection_id] = entry
        elif held is not entry:
            by_client[client_id] = {held.connection_id: held, entry.connection_id: entry}

    def _unfile(self, entry: E, client_id: str) -> None:
        by_client = self._by_client
        held = by_client.get(client_id)
        if held is entry:
            del by_client[client_id]
        elif isinstance(held, dict):
            held.pop(entry.connection_id, None)
            if len(held) == 1:
                (by_client[client_id],) = held.values()
            elif not held:
                del by_client[client_id]

    def join(self, entry: E, group: str) -> bool:
        """Add a registered ``entry`` to ``group``; ``False`` if not registered or already in."""
        if self._by_id.get(entry.connection_id) is not entry or group in entry.groups:
            return False
        self._groups.setdefault(group, {})[entry.connection_id] = entry
        entry.groups = entry.groups | {group}
        if self.changes is not None:
            self.changes.joined(entry.connection_id, entry.client_id, group)
        return True

    def leave(self, entry: E, group: str) -> bool:
        """Take ``entry`` out of ``group``; ``False`` if it was not in it."""
        if group not in entry.groups:
            return False
        entry.groups = entry.groups - {group}
        members = self._groups.get(group)
        if members is not None:
            members.pop(entry.connection_id, None)
            if not members:
                del self._groups[group]
        if self.changes is not None:
            self.changes.left(entry.connection_id, entry.client_id, group)
        return True

    def members(self, group: str) -> list[E]:
        """The sockets in ``group``."""
        return list(self._groups.get(group, {}).values())

    def group_sizes(self) -> dict[str, int]:
        """Every non-empty group and how many sockets it has."""
        return {group: len(members) for group, members in self._groups.items()}

    def of_client(self, client_id: str) -> list[E]:
        """Every registered socket of ``client_id``."""
        held = self._by_client.get(client_id)
        if held is None:
            return []
        return list(held.values()) if isinstance(held, dict) else [held]

    def count_client(self, client_id: str) -> int:
        """How many sockets ``client_id`` has open."""
        held = self._by_client.get(client_id)
        if held is None:
            return 0
        return len(held) if isinstance(held, dict) else 1

    def count_ip(self, ip: str) -> int:
        """How many sockets come from ``ip``."""
        return self._per_ip.get(ip, 0)

    def client_ids(self) -> list[str]:
        """Client ids with at least one socket."""
        return list(self._by_client)
