"""Registry: connections indexed by id, client id, address and group."""

from __future__ import annotations

from dataclasses import dataclass

from asgi_ws_stabilizer.core.registry import Registry


@dataclass(eq=False)
class Entry:
    connection_id: str
    client_id: str
    remote_ip: str
    groups: frozenset[str] = frozenset()


def test_add_indexes_three_ways() -> None:
    """An added entry is found by id, counted for its client and its address."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    assert len(registry) == 1
    assert "c1" in registry
    assert registry.get("c1") is a
    assert registry.get("c2") is None
    assert registry.of_client("alice") == [a]
    assert registry.count_client("alice") == 1
    assert registry.count_ip("10.0.0.1") == 1
    assert registry.client_ids() == ["alice"]


def test_counts_per_client_and_ip() -> None:
    """Counts add up across sockets sharing a client id or an address."""
    registry: Registry[Entry] = Registry()
    registry.add(Entry("c1", "alice", "10.0.0.1"))
    registry.add(Entry("c2", "alice", "10.0.0.2"))
    registry.add(Entry("c3", "bob", "10.0.0.1"))
    assert registry.count_client("alice") == 2
    assert registry.count_client("bob") == 1
    assert registry.count_client("carol") == 0
    assert registry.count_ip("10.0.0.1") == 2
    assert registry.count_ip("10.0.0.2") == 1
    assert registry.count_ip("10.9.9.9") == 0
    assert sorted(registry.client_ids()) == ["alice", "bob"]
    assert {e.connection_id for e in registry.of_client("alice")} == {"c1", "c2"}


def test_add_twice_is_noop() -> None:
    """Adding the same connection id again changes no count."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    registry.add(a)
    registry.add(Entry("c1", "mallory", "10.6.6.6"))
    assert len(registry) == 1
    assert registry.get("c1") is a
    assert registry.count_client("alice") == 1
    assert registry.count_client("mallory") == 0
    assert registry.count_ip("10.0.0.1") == 1
    assert registry.count_ip("10.6.6.6") == 0


def test_remove_undoes_add() -> None:
    """Removing the last socket of a client and address forgets both."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    b = Entry("c2", "alice", "10.0.0.1")
    registry.add(a)
    registry.add(b)
    assert registry.remove(a)
    assert registry.count_client("alice") == 1
    assert registry.count_ip("10.0.0.1") == 1
    assert registry.remove(b)
    assert len(registry) == 0
    assert registry.client_ids() == []
    assert registry.count_ip("10.0.0.1") == 0
    assert registry.of_client("alice") == []


def test_remove_is_idempotent() -> None:
    """Removing twice returns ``False`` the second time and changes nothing."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    assert registry.remove(a)
    assert not registry.remove(a)
    assert registry.count_ip("10.0.0.1") == 0


def test_remove_of_other_entry_with_same_id_is_refused() -> None:
    """Only the registered object itself can be removed, not another one with its id."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    assert not registry.remove(Entry("c1", "alice", "10.0.0.1"))
    assert registry.get("c1") is a
    assert registry.count_ip("10.0.0.1") == 1


def test_iteration_is_a_snapshot() -> None:
    """Iterating while removing sees every entry present when iteration began."""
    registry: Registry[Entry] = Registry()
    entries = [Entry(f"c{i}", "alice", "10.0.0.1") for i in range(5)]
    for entry in entries:
        registry.add(entry)
    seen = []
    for entry in registry:
        seen.append(entry)
        registry.remove(entry)
    assert seen == entries
    assert len(registry) == 0


def test_join_and_leave_groups() -> None:
    """Registered entries join and leave groups; members and sizes follow."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    b = Entry("c2", "bob", "10.0.0.2")
    registry.add(a)
    registry.add(b)
    assert registry.join(a, "room")
    assert not registry.join(a, "room")
    assert registry.join(b, "room")
    assert registry.join(b, "lobby")
    assert registry.members("room") == [a, b]
    assert registry.group_sizes() == {"room": 2, "lobby": 1}
    assert a.groups == {"room"}
    assert registry.leave(a, "room")
    assert not registry.leave(a, "room")
    assert registry.members("room") == [b]
    assert registry.leave(b, "lobby")
    assert registry.group_sizes() == {"room": 1}
    assert registry.members("lobby") == []


def test_unregistered_entry_cannot_join() -> None:
    """An entry that is not registered (or was removed) cannot join a group."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    assert not registry.join(a, "room")
    assert registry.members("room") == []
    assert a.groups == frozenset()


def test_remove_leaves_every_group() -> None:
    """Removing an entry takes it out of all its groups and drops groups left empty."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    b = Entry("c2", "bob", "10.0.0.2")
    registry.add(a)
    registry.add(b)
    registry.join(a, "room")
    registry.join(a, "solo")
    registry.join(b, "room")
    registry.remove(a)
    assert a.groups == frozenset()
    assert registry.group_sizes() == {"room": 1}
    assert registry.members("room") == [b]


def test_a_clients_sockets_come_and_go_in_any_order() -> None:
    """A client's sockets are found whatever order they arrive and leave in (one socket is
    filed as itself, several in a dict: the switch both ways loses none)."""
    registry: Registry[Entry] = Registry()
    a, b, c = (Entry(f"c{i}", "alice", "10.0.0.1") for i in range(3))
    for entry in (a, b, c):
        registry.add(entry)
    assert registry.of_client("alice") == [a, b, c]
    registry.remove(b)
    assert registry.of_client("alice") == [a, c]
    registry.remove(a)
    assert registry.of_client("alice") == [c]
    assert registry.count_client("alice") == 1
    registry.add(b)
    assert registry.of_client("alice") == [c, b]
    registry.remove(b)
    registry.remove(c)
    assert registry.of_client("alice") == []
    assert registry.count_client("alice") == 0
    assert registry.client_ids() == []


def test_rekey_moves_one_socket_between_clients() -> None:
    """``rekey`` files a socket under its new client id, leaving the old one's other sockets."""
    registry: Registry[Entry] = Registry()
    a, b = Entry("c1", "anon", "10.0.0.1"), Entry("c2", "anon", "10.0.0.1")
    bob = Entry("c3", "bob", "10.0.0.1")
    for entry in (a, b, bob):
        registry.add(entry)
    a.client_id = "bob"
    registry.rekey(a, "anon")
    assert registry.of_client("anon") == [b]
    assert registry.of_client("bob") == [bob, a]
    b.client_id = "carol"
    registry.rekey(b, "anon")
    assert registry.of_client("anon") == []
    assert registry.of_client("carol") == [b]
    assert sorted(registry.client_ids()) == ["bob", "carol"]
