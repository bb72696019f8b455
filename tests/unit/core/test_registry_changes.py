"""Registry.changes: every change to the registry is told once to its listener."""

from __future__ import annotations

from dataclasses import dataclass

from asgi_ws_stabilizer.core.registry import Registry


@dataclass(eq=False)
class Entry:
    connection_id: str
    client_id: str
    remote_ip: str
    groups: frozenset[str] = frozenset()


class Recorder:
    """A ``Changes`` listener that records each call as a tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def added(self, connection_id: str, client_id: str) -> None:
        self.calls.append(("added", connection_id, client_id))

    def removed(self, connection_id: str, client_id: str) -> None:
        self.calls.append(("removed", connection_id, client_id))

    def joined(self, connection_id: str, client_id: str, group: str) -> None:
        self.calls.append(("joined", connection_id, client_id, group))

    def left(self, connection_id: str, client_id: str, group: str) -> None:
        self.calls.append(("left", connection_id, client_id, group))

    def renamed(self, connection_id: str, old_client_id: str, client_id: str) -> None:
        self.calls.append(("renamed", connection_id, old_client_id, client_id))


def listened() -> tuple[Registry[Entry], Recorder]:
    """A registry with a recording listener."""
    registry: Registry[Entry] = Registry()
    recorder = Recorder()
    registry.changes = recorder
    return registry, recorder


def test_add_reports_added_once() -> None:
    """Adding reports ``added`` with the ids; adding the same connection again reports nothing."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    registry.add(a)
    registry.add(Entry("c1", "alice", "10.0.0.1"))
    assert recorder.calls == [("added", "c1", "alice")]


def test_remove_reports_removed_once() -> None:
    """Removing reports ``removed``; removing again, or a stand-in with the same id, nothing."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    recorder.calls.clear()
    assert registry.remove(a)
    assert not registry.remove(a)
    assert not registry.remove(Entry("c1", "alice", "10.0.0.1"))
    assert recorder.calls == [("removed", "c1", "alice")]


def test_remove_of_a_replaced_entry_reports_nothing() -> None:
    """Removing an entry whose id now belongs to another registered entry reports nothing."""
    registry, recorder = listened()
    registered = Entry("c1", "alice", "10.0.0.1")
    registry.add(registered)
    recorder.calls.clear()
    assert not registry.remove(Entry("c1", "bob", "10.0.0.2"))
    assert recorder.calls == []
    assert registry.get("c1") is registered


def test_remove_reports_left_for_each_group_before_removed() -> None:
    """Removing a member of groups reports ``left`` for each group, then ``removed``."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    registry.join(a, "room")
    registry.join(a, "lobby")
    recorder.calls.clear()
    registry.remove(a)
    *lefts, last = recorder.calls
    assert sorted(lefts) == [("left", "c1", "alice", "lobby"), ("left", "c1", "alice", "room")]
    assert last == ("removed", "c1", "alice")
    assert registry.group_sizes() == {}


def test_join_reports_joined_once() -> None:
    """Joining reports ``joined`` with the group; joining it again reports nothing."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    recorder.calls.clear()
    assert registry.join(a, "room")
    assert not registry.join(a, "room")
    assert recorder.calls == [("joined", "c1", "alice", "room")]


def test_join_of_an_unregistered_entry_reports_nothing() -> None:
    """An entry that is not registered joins nothing and nothing is reported."""
    registry, recorder = listened()
    assert not registry.join(Entry("c1", "alice", "10.0.0.1"), "room")
    assert recorder.calls == []


def test_leave_reports_left_once() -> None:
    """Leaving reports ``left`` with the group; leaving it again reports nothing."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    registry.join(a, "room")
    recorder.calls.clear()
    assert registry.leave(a, "room")
    assert not registry.leave(a, "room")
    assert not registry.leave(a, "never-joined")
    assert recorder.calls == [("left", "c1", "alice", "room")]


def test_rekey_reports_renamed_with_both_ids() -> None:
    """Filing an entry under its new client id reports ``renamed`` from the old id to the new."""
    registry, recorder = listened()
    a = Entry("c1", "anon-1", "10.0.0.1")
    registry.add(a)
    recorder.calls.clear()
    a.client_id = "alice"
    registry.rekey(a, "anon-1")
    assert recorder.calls == [("renamed", "c1", "anon-1", "alice")]
    assert registry.client_ids() == ["alice"]


def test_rekey_of_an_unregistered_entry_reports_nothing() -> None:
    """Rekeying an entry that is not registered (or was removed) reports nothing."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.rekey(a, "anon-1")
    registry.add(a)
    registry.remove(a)
    recorder.calls.clear()
    registry.rekey(a, "anon-1")
    assert recorder.calls == []


def test_changes_after_a_rekey_carry_the_new_client_id() -> None:
    """Once rekeyed, joins, leaves and the removal report the new client id."""
    registry, recorder = listened()
    a = Entry("c1", "anon-1", "10.0.0.1")
    registry.add(a)
    a.client_id = "alice"
    registry.rekey(a, "anon-1")
    registry.join(a, "room")
    registry.remove(a)
    assert recorder.calls == [
        ("added", "c1", "anon-1"),
        ("renamed", "c1", "anon-1", "alice"),
        ("joined", "c1", "alice", "room"),
        ("left", "c1", "alice", "room"),
        ("removed", "c1", "alice"),
    ]


def test_each_connection_reports_its_own_ids() -> None:
    """Changes of two connections of one client each carry their own connection id."""
    registry, recorder = listened()
    a = Entry("c1", "alice", "10.0.0.1")
    b = Entry("c2", "alice", "10.0.0.2")
    registry.add(a)
    registry.add(b)
    registry.join(b, "room")
    registry.remove(a)
    assert recorder.calls == [
        ("added", "c1", "alice"),
        ("added", "c2", "alice"),
        ("joined", "c2", "alice", "room"),
        ("removed", "c1", "alice"),
    ]


def test_no_listener_means_no_calls() -> None:
    """With ``changes`` unset (``None``) every operation works and no listener is told."""
    registry, recorder = listened()
    registry.changes = None
    a = Entry("c1", "anon-1", "10.0.0.1")
    registry.add(a)
    assert registry.join(a, "room")
    assert registry.leave(a, "room")
    assert registry.join(a, "lobby")
    a.client_id = "alice"
    registry.rekey(a, "anon-1")
    assert registry.client_ids() == ["alice"]
    assert registry.remove(a)
    assert recorder.calls == []
    assert len(registry) == 0
    assert registry.group_sizes() == {}


def test_listener_set_later_hears_only_later_changes() -> None:
    """A listener set after some changes hears only the changes made from then on."""
    registry: Registry[Entry] = Registry()
    a = Entry("c1", "alice", "10.0.0.1")
    registry.add(a)
    recorder = Recorder()
    registry.changes = recorder
    registry.join(a, "room")
    assert recorder.calls == [("joined", "c1", "alice", "room")]
