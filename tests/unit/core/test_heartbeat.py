"""HeartbeatState decisions and the DeadlineHeap, driven with explicit ``now`` values."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.core.heartbeat import Beat, DeadlineHeap, HeartbeatState

INTERVAL = 20.0
TIMEOUT = 10.0


def fresh(now: float = 100.0) -> HeartbeatState:
    return HeartbeatState(INTERVAL, TIMEOUT, now)


# -- HeartbeatState -------------------------------------------------------------------------


def test_waits_until_interval_of_silence() -> None:
    """Before ``interval`` seconds of silence nothing is due; the next look is at the due time."""
    state = fresh(100.0)
    assert state.poll(100.0) == (Beat.WAIT, 120.0)
    assert state.poll(119.999) == (Beat.WAIT, 120.0)
    assert state.ping_sent_at is None


def test_ping_due_after_interval_of_silence() -> None:
    """At ``interval`` seconds of silence a ping is due, and the next look is ``timeout`` later."""
    state = fresh(100.0)
    assert state.poll(120.0) == (Beat.PING, 130.0)
    assert state.ping_sent_at == 120.0


def test_waits_for_timeout_after_ping() -> None:
    """Between the ping and its timeout the state waits for the ping's deadline."""
    state = fresh(100.0)
    state.poll(120.0)
    assert state.poll(129.9) == (Beat.WAIT, 130.0)


def test_times_out_when_nothing_arrives_after_ping() -> None:
    """``timeout`` seconds after an unanswered ping the connection is timed out."""
    state = fresh(100.0)
    state.poll(120.0)
    assert state.poll(130.0) == (Beat.TIMEOUT, 130.0)


def test_any_frame_resets_silence_and_outstanding_ping() -> None:
    """Any inbound frame after a ping counts as life: no timeout, next ping an interval later."""
    state = fresh(100.0)
    state.poll(120.0)
    state.saw_frame(125.0)
    assert state.ping_sent_at is None
    assert state.poll(130.0) == (Beat.WAIT, 145.0)
    assert state.poll(145.0) == (Beat.PING, 155.0)


def test_frame_before_ping_postpones_it() -> None:
    """A frame during the silent interval pushes the ping back to a full interval after it."""
    state = fresh(100.0)
    state.saw_frame(110.0)
    assert state.poll(120.0) == (Beat.WAIT, 130.0)


def test_pong_gives_rtt() -> None:
    """A pong answering an outstanding ping records the round-trip time."""
    state = fresh(100.0)
    state.poll(120.0)
    assert state.saw_pong(120.25) == pytest.approx(0.25)
    assert state.rtt == pytest.approx(0.25)
    assert state.poll(125.0) == (Beat.WAIT, 140.25)


def test_unsolicited_pong_gives_no_rtt_but_counts_as_life() -> None:
    """A pong without an outstanding ping has no RTT, yet still resets the silence."""
    state = fresh(100.0)
    assert state.saw_pong(110.0) is None
    assert state.rtt is None
    assert state.poll(120.0) == (Beat.WAIT, 130.0)


def test_paused_connection_never_times_out() -> None:
    """While paused, an unanswered ping is not a timeout: the state waits another interval."""
    state = fresh(100.0)
    state.paused = True
    state.poll(120.0)
    beat, deadline = state.poll(130.0)
    assert beat is Beat.WAIT
    assert deadline == 150.0
    assert state.ping_sent_at is None


def test_paused_connection_still_pings() -> None:
    """A paused connection keeps being pinged every interval (proxies' idle timers need it)."""
    state = fresh(100.0)
    state.paused = True
    assert state.poll(120.0)[0] is Beat.PING
    state.poll(130.0)
    assert state.poll(150.0) == (Beat.PING, 160.0)


def test_unpaused_connection_times_out_again() -> None:
    """Once resumed, a connection that stays silent after a ping is timed out as usual."""
    state = fresh(100.0)
    state.paused = True
    state.poll(120.0)
    state.paused = False
    assert state.poll(130.0) == (Beat.TIMEOUT, 130.0)


# -- DeadlineHeap ---------------------------------------------------------------------------


def test_heap_pops_in_deadline_order() -> None:
    """Due keys come out earliest deadline first, ties in scheduling order."""
    heap = DeadlineHeap()
    heap.schedule("c", 3.0)
    heap.schedule("a", 1.0)
    heap.schedule("b", 2.0)
    heap.schedule("a2", 1.0)
    assert heap.pop_due(10.0) == ["a", "a2", "b", "c"]
    assert len(heap) == 0


def test_heap_pops_only_due_keys() -> None:
    """``pop_due`` takes keys at or before ``now`` and leaves the rest."""
    heap = DeadlineHeap()
    heap.schedule("a", 1.0)
    heap.schedule("b", 2.0)
    heap.schedule("c", 3.0)
    assert heap.pop_due(2.0) == ["a", "b"]
    assert "c" in heap
    assert "a" not in heap
    assert heap.next_deadline() == 3.0


def test_heap_reschedule_replaces_deadline() -> None:
    """Scheduling a key again moves its deadline; the old one no longer fires."""
    heap = DeadlineHeap()
    heap.schedule("a", 1.0)
    heap.schedule("a", 5.0)
    assert len(heap) == 1
    assert heap.next_deadline() == 5.0
    assert heap.pop_due(4.0) == []
    assert heap.pop_due(5.0) == ["a"]


def test_heap_reschedule_earlier() -> None:
    """Moving a deadline earlier fires once at the new time; the stale later entry is skipped."""
    heap = DeadlineHeap()
    heap.schedule("a", 5.0)
    heap.schedule("a", 1.0)
    assert heap.pop_due(1.0) == ["a"]
    assert heap.pop_due(10.0) == []
    assert heap.next_deadline() is None


def test_heap_remove_forgets_key() -> None:
    """A removed key is never popped, and removing an unknown key is harmless."""
    heap = DeadlineHeap()
    heap.schedule("a", 1.0)
    heap.schedule("b", 2.0)
    heap.remove("a")
    heap.remove("nobody")
    assert "a" not in heap
    assert len(heap) == 1
    assert heap.next_deadline() == 2.0
    assert heap.pop_due(10.0) == ["b"]


def test_heap_lazy_deletion_skips_stale_entries() -> None:
    """Many reschedules of one key leave one live deadline; stale entries never surface."""
    heap = DeadlineHeap()
    for i in range(50):
        heap.schedule("a", float(i))
    heap.schedule("b", 10.5)
    assert len(heap) == 2
    assert heap.next_deadline() == 10.5
    assert heap.pop_due(20.0) == ["b"]
    assert heap.pop_due(49.0) == ["a"]


def test_heap_key_can_be_scheduled_again_after_pop_or_remove() -> None:
    """A popped or removed key scheduled anew fires at its new deadline only."""
    heap = DeadlineHeap()
    heap.schedule("a", 1.0)
    assert heap.pop_due(1.0) == ["a"]
    heap.schedule("a", 3.0)
    heap.schedule("b", 1.0)
    heap.remove("b")
    heap.schedule("b", 4.0)
    assert heap.pop_due(2.0) == []
    assert heap.pop_due(4.0) == ["a", "b"]


def test_empty_heap() -> None:
    """An empty heap has no next deadline and nothing due."""
    heap = DeadlineHeap()
    assert heap.next_deadline() is None
    assert heap.pop_due(1e9) == []
