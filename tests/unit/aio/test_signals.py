"""Drain on a signal: the signal chaining (in this process, with real signals)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from asgi_ws_stabilizer.aio.signals import SignalDrain

from ...timing import WAIT


async def test_chains_in_front_of_a_signal_signal_handler() -> None:
    """A handler installed with signal.signal (uvicorn's way) runs after the drain."""
    order: list[str] = []
    seen = asyncio.Event()

    def previous(signum: int, frame: FrameType | None) -> None:
        order.append("server")
        seen.set()

    async def drain() -> None:
        order.append("drain")

    original = signal.signal(signal.SIGTERM, previous)
    chained = SignalDrain(asyncio.get_running_loop(), drain)
    try:
        assert chained.install()[0].startswith("SIGTERM")
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(seen.wait(), WAIT)
        assert order == ["drain", "server"]
        chained.uninstall()
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        chained.uninstall()
        signal.signal(signal.SIGTERM, original)


async def test_chains_in_front_of_a_loop_signal_handler() -> None:
    """A handler on the event loop (hypercorn's way) runs after the drain; a second signal
    during the drain goes straight to it."""
    loop = asyncio.get_running_loop()
    order: list[str] = []
    release = asyncio.Event()
    calls = asyncio.Event()

    def previous() -> None:
        order.append("server")
        calls.set()

    async def drain() -> None:
        order.append("drain")
        await release.wait()

    loop.add_signal_handler(signal.SIGTERM, previous)
    chained = SignalDrain(loop, drain)
    try:
        assert "loop handler" in chained.install()[0]
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        assert order == ["drain"]
        signal.raise_signal(signal.SIGTERM)  # impatient operator: no more waiting
        await asyncio.wait_for(calls.wait(), WAIT)
        assert order == ["drain", "server"]
        release.set()
        await asyncio.sleep(0.05)
        assert order == ["drain", "server", "server"]
    finally:
        chained.uninstall()
        loop.remove_signal_handler(signal.SIGTERM)


def test_ignored_signals_stay_ignored() -> None:
    """A signal set to SIG_IGN is left alone."""
    original = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        loop = asyncio.new_event_loop()
        try:
            chained = SignalDrain(loop, lambda: None)
            found = chained.install()
            assert not any(f.startswith("SIGINT") for f in found)
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            chained.uninstall()
        finally:
            loop.close()
    finally:
        signal.signal(signal.SIGINT, original)


@pytest.fixture(autouse=True)
def _keep_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
