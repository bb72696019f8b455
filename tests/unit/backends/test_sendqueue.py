"""SendQueue: what a process has to write to its broker, in order, bounded in payload bytes."""

from __future__ import annotations

import asyncio

from asgi_ws_stabilizer.backends.sendqueue import Item, SendQueue


def future() -> asyncio.Future[int]:
    """A future on the running loop, as a hub send waits on."""
    return asyncio.get_running_loop().create_future()


def held(queue: SendQueue) -> list[Item]:
    """Every queued item, oldest first, without marking any in flight."""
    return list(queue._items)


def payloads(queue: SendQueue) -> list[list[str | bytes] | list[str]]:
    """What every queued item carries, oldest first: a send's args or a presence item's ops."""
    return [item.args if item.args is not None else item.ops for item in held(queue)]


def sends(queue: SendQueue) -> list[Item]:
    """The queued sends (not presence items), oldest first."""
    return [item for item in held(queue) if item.args is not None]


async def test_sends_and_changes_keep_their_order() -> None:
    """Sends and presence changes come out of the queue in the order they went in."""
    queue = SendQueue(1000)
    queue.send(["a"], 1, None)
    queue.change("add", "c1", "alice", "")
    queue.send(["b"], 1, None)
    queue.send(["c"], 1, None)
    assert len(queue) == 4
    assert payloads(queue) == [["a"], ["add", "c1", "alice", ""], ["b"], ["c"]]


async def test_bytes_count_the_payload_of_held_sends_only() -> None:
    """``bytes`` adds each send's size; presence changes cost nothing."""
    queue = SendQueue(1000)
    assert queue.bytes == 0
    queue.send(["a"], 10, None)
    queue.send(["b"], 25, None)
    queue.change("join", "c1", "alice", "room")
    assert queue.bytes == 35


async def test_pseq_increases_with_every_send() -> None:
    """Each send gets the next publisher number, a dropped oversized one included."""
    queue = SendQueue(100)
    queue.send(["a"], 1, None)
    queue.change("add", "c1", "alice", "")
    queue.send(["big"], 101, None)
    queue.send(["b"], 1, None)
    assert [item.pseq for item in sends(queue)] == [1, 3]


async def test_send_larger_than_the_limit_is_dropped_at_once() -> None:
    """A send bigger than the whole limit is refused: counted as 1 dropped, its future gets 0."""
    queue = SendQueue(10)
    held = future()
    queue.send(["a"], 5, held)
    done = future()
    assert queue.send(["big"], 11, done) == 1
    assert done.done()
    assert done.result() == 0
    assert len(queue) == 1
    assert queue.bytes == 5
    assert not held.done()


async def test_send_exactly_at_the_limit_is_kept() -> None:
    """A send whose size equals the limit is held, and nothing is dropped."""
    queue = SendQueue(10)
    done = future()
    assert queue.send(["a"], 10, done) == 0
    assert len(queue) == 1
    assert queue.bytes == 10
    assert not done.done()


async def test_past_the_limit_the_oldest_sends_are_dropped() -> None:
    """Over the limit the oldest held sends go, their futures resolved with 0, until it fits."""
    queue = SendQueue(10)
    first, second, third, fourth = future(), future(), future(), future()
    assert queue.send(["a"], 4, first) == 0
    assert queue.send(["b"], 4, second) == 0
    assert queue.send(["c"], 2, third) == 0
    assert queue.send(["d"], 7, fourth) == 2
    assert first.result() == 0
    assert second.result() == 0
    assert not third.done()
    assert not fourth.done()
    assert [item.args for item in sends(queue)] == [["c"], ["d"]]
    assert queue.bytes == 9


async def test_items_in_flight_are_never_dropped() -> None:
    """Sends being written (``take``) stay; the oldest held one after them is dropped instead."""
    queue = SendQueue(10)
    writing, held, new = future(), future(), future()
    queue.send(["a"], 5, writing)
    queue.take(1)
    queue.send(["b"], 4, held)
    assert queue.send(["c"], 3, new) == 1
    assert not writing.done()
    assert held.result() == 0
    assert not new.done()
    assert [item.args for item in sends(queue)] == [["a"], ["c"]]
    assert queue.bytes == 8


async def test_new_send_is_dropped_when_only_in_flight_sends_are_older() -> None:
    """With every older send in flight, the new send itself is what goes over the limit."""
    queue = SendQueue(10)
    writing, new = future(), future()
    queue.send(["a"], 8, writing)
    queue.take(1)
    assert queue.send(["b"], 5, new) == 1
    assert new.result() == 0
    assert not writing.done()
    assert len(queue) == 1
    assert queue.bytes == 8


async def test_presence_items_are_never_dropped() -> None:
    """Dropping for the limit skips presence changes and takes only sends."""
    queue = SendQueue(10)
    old = future()
    queue.change("add", "c1", "alice", "")
    queue.send(["a"], 6, old)
    queue.change("join", "c1", "alice", "room")
    assert queue.send(["b"], 6, None) == 1
    assert old.result() == 0
    assert payloads(queue) == [["add", "c1", "alice", ""], ["join", "c1", "alice", "room"], ["b"]]


async def test_consecutive_changes_merge_into_one_item() -> None:
    """Presence changes in a row join the last presence item instead of queueing new ones."""
    queue = SendQueue(10)
    queue.change("add", "c1", "alice", "")
    queue.change("join", "c1", "alice", "room")
    assert len(queue) == 1
    assert payloads(queue) == [["add", "c1", "alice", "", "join", "c1", "alice", "room"]]


async def test_change_after_a_send_starts_a_new_item() -> None:
    """A presence change after a send is its own item, so the order with sends is kept."""
    queue = SendQueue(10)
    queue.change("add", "c1", "alice", "")
    queue.send(["a"], 1, None)
    queue.change("remove", "c1", "alice", "")
    assert len(queue) == 3
    assert payloads(queue) == [["add", "c1", "alice", ""], ["a"], ["remove", "c1", "alice", ""]]


async def test_change_never_extends_an_item_in_flight() -> None:
    """A presence item being written is not extended: the next change starts a new item."""
    queue = SendQueue(10)
    queue.change("add", "c1", "alice", "")
    (writing,) = queue.take(1)
    queue.change("join", "c1", "alice", "room")
    assert writing.ops == ["add", "c1", "alice", ""]
    assert len(queue) == 2
    assert payloads(queue) == [["add", "c1", "alice", ""], ["join", "c1", "alice", "room"]]


async def test_take_marks_the_oldest_in_flight_without_removing() -> None:
    """``take(n)`` returns the oldest ``n`` items, marked in flight, still queued and counted."""
    queue = SendQueue(100)
    queue.send(["a"], 3, None)
    queue.send(["b"], 4, None)
    queue.send(["c"], 5, None)
    batch = queue.take(2)
    assert [item.args for item in batch] == [["a"], ["b"]]
    assert all(item.in_flight for item in batch)
    assert len(queue) == 3
    assert queue.bytes == 12
    assert [item.in_flight for item in sends(queue)] == [True, True, False]


async def test_take_more_than_queued_returns_them_all() -> None:
    """Asking for more items than are queued gives every queued item."""
    queue = SendQueue(100)
    queue.send(["a"], 1, None)
    assert [item.args for item in queue.take(64)] == [["a"]]
    assert queue.take(64)[0].in_flight


async def test_written_pops_resolves_and_frees_bytes() -> None:
    """``written(counts)`` removes that many items, resolves their futures with the counts and
    gives their bytes back."""
    queue = SendQueue(100)
    first, second, third = future(), future(), future()
    queue.send(["a"], 3, first)
    queue.change("add", "c1", "alice", "")
    queue.send(["b"], 4, second)
    queue.send(["c"], 5, third)
    queue.take(3)
    queue.written([2, 0, 7])
    assert first.result() == 2
    assert second.result() == 7
    assert not third.done()
    assert len(queue) == 1
    assert queue.bytes == 5
    assert [item.args for item in sends(queue)] == [["c"]]


async def test_written_frees_room_under_the_limit() -> None:
    """After a write, new sends fit in the bytes it freed and nothing is dropped."""
    queue = SendQueue(10)
    queue.send(["a"], 8, None)
    queue.take(1)
    queue.written([1])
    done = future()
    assert queue.send(["b"], 8, done) == 0
    assert not done.done()


async def test_failed_lets_sends_be_dropped_again() -> None:
    """After ``failed()`` the sends that were in flight are held again and may be dropped."""
    queue = SendQueue(10)
    writing = future()
    queue.send(["a"], 6, writing)
    batch = queue.take(1)
    queue.failed()
    assert not any(item.in_flight for item in batch)
    assert queue.send(["b"], 6, None) == 1
    assert writing.result() == 0
    assert [item.args for item in sends(queue)] == [["b"]]


async def test_failed_lets_a_presence_item_be_extended_again() -> None:
    """After ``failed()`` a presence item that was in flight takes the next change again."""
    queue = SendQueue(10)
    queue.change("add", "c1", "alice", "")
    queue.take(1)
    queue.failed()
    queue.change("join", "c1", "alice", "room")
    assert len(queue) == 1


async def test_a_cancelled_future_is_left_alone() -> None:
    """A send whose caller gave up (future cancelled) is dropped or written without error."""
    queue = SendQueue(10)
    gone, also_gone = future(), future()
    gone.cancel()
    also_gone.cancel()
    queue.send(["a"], 6, gone)
    queue.send(["b"], 6, None)
    queue.send(["c"], 1, also_gone)
    queue.take(2)
    queue.written([1, 1])
    assert gone.cancelled()
    assert also_gone.cancelled()
    assert len(queue) == 0
    assert queue.bytes == 0
