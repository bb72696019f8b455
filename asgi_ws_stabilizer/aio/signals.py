"""Drain on SIGTERM/SIGINT, *before* the server's own shutdown, then hand the signal on.

uvicorn closes every WebSocket with 1012 before ``lifespan.shutdown`` (reference/asgi-facts.md
2.3), so a drain that waits for lifespan finds nothing left. The drain therefore also runs on
SIGTERM/SIGINT, chained in front of the handler the server installed: drain, then call it.
uvicorn installs its handlers with ``signal.signal`` (visible through ``signal.getsignal``);
hypercorn installs them on the event loop (``loop.add_signal_handler``), which keeps them in the
loop's private ``_signal_handlers`` mapping: that is the only place to find them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalDrain:
    """Runs ``drain()`` when SIGTERM/SIGINT arrives, then hands the signal to whoever had it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, drain: Callable[[], Any]) -> None:
        self.loop = loop
        self._drain = drain
        self._restore: list[Callable[[], None]] = []
        self._running: asyncio.Task[Any] | None = None

    def install(self) -> list[str]:
        """Chain in front of the current handlers; returns how each signal was found."""
        found = []
        handlers: dict[int, asyncio.Handle] = getattr(self.loop, "_signal_handlers", {}) or {}
        for sig in HANDLED_SIGNALS:
            handle = handlers.get(sig)
            if handle is not None:
                self._chain_loop_handler(sig, handle)
                found.append(f"{sig.name}: loop handler")
                continue
            previous = signal.getsignal(sig)
            if previous is None or previous is signal.SIG_IGN:
                continue
            try:
                signal.signal(sig, self._signal_handler(sig, previous))
            except ValueError:  # not the main thread: signals cannot be handled here
                continue
            self._restore.append(_restorer(sig, previous))
            found.append(f"{sig.name}: {getattr(previous, '__qualname__', previous)}")
        return found

    def uninstall(self) -> None:
        """Put the handlers back."""
        for restore in reversed(self._restore):
            with contextlib.suppress(Exception):
                restore()
        self._restore.clear()

    def _chain_loop_handler(self, sig: signal.Signals, handle: asyncio.Handle) -> None:
        callback: Any = getattr(handle, "_callback")  # noqa: B009  (private: see module doc)
        args: Any = getattr(handle, "_args")  # noqa: B009

        def then() -> None:
            callback(*args)

        self.loop.add_signal_handler(sig, self._begin, then)
        self._restore.append(lambda: self.loop.add_signal_handler(sig, callback, *args))

    def _signal_handler(self, sig: signal.Signals, previous: Any) -> Callable[..., None]:
        def then(frame: FrameType | None) -> None:
            if callable(previous):
                previous(sig, frame)
            elif previous is signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
                signal.raise_signal(sig)

        def handler(signum: int, frame: FrameType | None) -> None:
            self.loop.call_soon_threadsafe(self._begin, lambda: then(frame))

        return handler

    def _begin(self, then: Callable[[], None]) -> None:
        if self._running is not None:
            then()  # a second signal: no more waiting
            return

        async def run() -> None:
            try:
                await self._drain()
            finally:
                then()

        self._running = self.loop.create_task(run(), name="asgi_ws_stabilizer:drain")


def _restorer(sig: signal.Signals, previous: Any) -> Callable[[], None]:
    def restore() -> None:
        signal.signal(sig, previous)

    return restore
