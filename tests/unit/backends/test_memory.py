"""The in-memory backend: every send goes straight to this process's delivery."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.backends.base import Backend
from asgi_ws_stabilizer.backends.memory import MemoryBackend
from asgi_ws_stabilizer.core.delivery import BroadcastResult, Target
from asgi_ws_stabilizer.core.messages import Frame, encode
from asgi_ws_stabilizer.core.registry import Registry
from asgi_ws_stabilizer.errors import StateError
from asgi_ws_stabilizer.resume.sessions import SessionStore


class FakeDelivery:
    """A ``LocalDelivery`` that records its calls and answers with set results."""

    def __init__(self, result: BroadcastResult, closed: int) -> None:
        self.result = result
        self.closed = closed
        self.delivered: list[tuple[Target, Frame, frozenset[str]]] = []
        self.closes: list[tuple[str, int, str]] = []

    async def deliver(
        self, target: Target, frame: Frame, excluded: frozenset[str]
    ) -> BroadcastResult:
        self.delivered.append((target, frame, excluded))
        return self.result

    async def close(self, client_id: str, code: int, reason: str) -> int:
        self.closes.append((client_id, code, reason))
        return self.closed

    def kick(self, connection_id: str, code: int, reason: str) -> None:
        self.closes.append((connection_id, code, reason))


def bound() -> tuple[MemoryBackend, FakeDelivery]:
    """A backend bound to a fake delivery."""
    backend = MemoryBackend(session_ttl=30.0, resume_buffer_size=64)
    local = FakeDelivery(BroadcastResult(targeted=3, queued=2, dropped=1), closed=2)
    backend.bind(local, Registry())
    return backend, local


async def test_publish_hands_the_send_to_the_delivery() -> None:
    """``publish`` passes the exact target, frame and exclusions, and returns what they did."""
    backend, local = bound()
    frame = encode({"n": 1})
    target = Target("group", "room")
    excluded = frozenset({"c-1", "client-b"})
    result = await backend.publish(target, frame, excluded)
    assert result is local.result
    assert len(local.delivered) == 1
    got_target, got_frame, got_excluded = local.delivered[0]
    assert got_target == target
    assert got_frame is frame
    assert got_excluded == excluded
    assert local.closes == []


async def test_close_hands_the_close_to_the_delivery() -> None:
    """``close`` passes the client id, code and reason, and returns how many closed."""
    backend, local = bound()
    assert await backend.close("client-a", 4000, "bye") == 2
    assert local.closes == [("client-a", 4000, "bye")]
    assert local.delivered == []


async def test_rebinding_uses_the_new_delivery() -> None:
    """Sends go to the delivery bound last."""
    backend, first = bound()
    second = FakeDelivery(BroadcastResult(), closed=5)
    backend.bind(second, Registry())
    assert await backend.close("c", 1000, "") == 5
    assert first.closes == []


async def test_an_unbound_backend_refuses_sends() -> None:
    """Before ``bind`` a send raises ``StateError`` saying the backend has no hub."""
    backend = MemoryBackend(session_ttl=1.0, resume_buffer_size=1)
    with pytest.raises(StateError, match="not bound to a hub"):
        await backend.publish(Target("all"), encode("x"), frozenset())
    with pytest.raises(StateError, match="not bound to a hub"):
        await backend.close("client-a", 1000, "")


def test_sessions_are_a_store_with_the_given_settings() -> None:
    """The backend keeps a ``SessionStore`` with the given ttl and buffer size, empty at first."""
    backend = MemoryBackend(session_ttl=12.5, resume_buffer_size=7)
    assert isinstance(backend, Backend)
    assert isinstance(backend.sessions, SessionStore)
    assert backend.sessions.ttl == 12.5
    assert backend.sessions.buffer_limit == 7
    assert len(backend.sessions) == 0
    assert repr(backend) == "<MemoryBackend sessions=0>"


async def test_start_and_aclose_change_nothing() -> None:
    """Starting and closing have nothing to do: the backend still delivers afterwards."""
    backend, local = bound()
    sessions = backend.sessions
    await backend.start()
    await backend.aclose()
    assert backend.sessions is sessions
    assert await backend.close("c", 1000, "") == 2
    assert local.closes == [("c", 1000, "")]
