"""Replay buffers and the session store."""

from __future__ import annotations

from asgi_ws_stabilizer.resume.sessions import ResumeBuffer, SessionStore


def msg(i: int) -> dict[str, str]:
    return {"type": "websocket.send", "text": str(i)}


def test_replay_after_count() -> None:
    """A client that received n messages gets n+1.. in order, and nothing is missed."""
    buffer = ResumeBuffer(limit=1000)
    for i in range(1, 6):
        assert buffer.append(msg(i), 1) == i
    replay, missed = buffer.since(2)
    assert replay == [msg(3), msg(4), msg(5)]
    assert missed == 0
    assert buffer.since(5) == ([], 0)


def test_bounded_buffer_reports_missed_exactly() -> None:
    """When the buffer dropped what the client needs, missed counts exactly those."""
    buffer = ResumeBuffer(limit=3)
    for i in range(1, 8):
        buffer.append(msg(i), 1)
    assert buffer.first == 5
    replay, missed = buffer.since(1)
    assert replay == [msg(5), msg(6), msg(7)]
    assert missed == 3  # messages 2, 3 and 4


def test_oversized_message_is_dropped_at_once() -> None:
    """A message bigger than the whole buffer is not held, and counts as missed."""
    buffer = ResumeBuffer(limit=10)
    buffer.append(msg(1), 4)
    buffer.append(msg(2), 50)
    assert len(buffer) == 0
    assert buffer.since(0) == ([], 2)


def test_store_detach_attach_expire() -> None:
    """A detached session lives for ttl seconds; attaching again keeps it; then it expires."""
    store = SessionStore(ttl=10, buffer_limit=100)
    session = store.create("s1", "alice")
    store.attach(session, connection_id="socket")
    store.detach(session, now=100)
    assert store.get("s1", now=105) is session
    assert store.detached_of_client("alice") == [session]
    store.attach(session, connection_id="socket2")
    assert store.detached_of_client("alice") == []
    store.detach(session, now=200)
    assert store.get("s1", now=210) is None
    assert len(store) == 0


def test_store_expire_and_groups() -> None:
    """Away sessions are found by group, and expire() forgets the stale ones."""
    store = SessionStore(ttl=5, buffer_limit=100)
    a, b = store.create("a", "x"), store.create("b", "y")
    a.groups.add("room")
    store.detach(a, now=0)
    store.detach(b, now=3)
    assert store.detached_in_group("room") == [a]
    assert store.expire(now=6) == 1
    assert [s.session_id for s in store.detached()] == ["b"]
