"""The pump: a task that reads a socket's server ``receive()`` into its inbox.

Someone must always read the server (aio/reader.py says why). While the app waits in
``receive()`` it reads inline; once it has had a message and is not back soon, the reader watch
(aio/readers.py) starts this task, which feeds the bounded inbox until the app waits on the
inbox again, then hands reading back.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Protocol

from starlette.types import Message, Receive

from ..core.heartbeat import HeartbeatState
from .inbox import Inbox
from .inline import INLINE_READS


class PumpServices(Protocol):
    """What the pump needs of the hub (the reader's services have it)."""

    def clock_now(self) -> float: ...
    def grew(self) -> None: ...


class Pump(ABC):
    """The pumping side of a reader: ``Reader`` (aio/reader.py) is one, and sets these slots up
    in ``_start_reader``."""

    __slots__ = ("_pump_task", "reading")

    # Provided by the reader.
    port: PumpServices
    inbox: Inbox
    heartbeat: HeartbeatState
    beating: bool
    close_code: int | None
    _loop: asyncio.AbstractEventLoop
    _receive: Receive
    _pump_task: asyncio.Task[None] | None
    reading: bool
    """Whether the app (inline) or the pump awaits the server's ``receive()`` now."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """Whether the connection has ended."""

    @abstractmethod
    def inbound(self, message: Message) -> int:
        """Act on one server message; its payload size if the app should get it, else -1."""

    @abstractmethod
    def _receive_failed(self, exc: Exception) -> None:
        """The server's ``receive()`` raised: the socket is unusable, as if the peer left."""

    def check_reader(self) -> None:
        """Start the pump unless the app reads inline now (see aio/readers.py)."""
        if not self.reading and not self.finished:
            self.start_pump()

    def start_pump(self) -> None:
        """Read the server in a task of its own, into the inbox."""
        # Also while closing (the app has been told): the reads then only drop data, and keep
        # the server's queue moving so that the client's close reply gets through.
        if self._pump_task is None and not self.finished:
            self.reading = True
            self._pump_task = self._loop.create_task(self._pump(), name="asgi_ws_stabilizer:pump")

    @property
    def pumping(self) -> bool:
        """Whether the pump task reads the socket now."""
        return self._pump_task is not None

    def stop_pump(self) -> None:
        """Cancel the pump, if it runs."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            self._pump_task = None

    async def _pump(self) -> None:
        receive = self._receive
        inbox = self.inbox
        try:
            while True:
                message = await receive()
                size = self.inbound(message)
                if size >= 0:
                    app_waits = inbox.awaited()
                    if inbox.full():
                        # The app, not the peer, is slow: stop reading (the server's own flow
                        # control takes over) and do not time the peer out meanwhile.
                        if not self.beating:
                            await inbox.put(message, size)
                        else:
                            heartbeat = self.heartbeat
                            heartbeat.paused = True
                            try:
                                await inbox.put(message, size)
                            finally:
                                heartbeat.paused = False
                                heartbeat.saw_frame(self.port.clock_now())
                    else:
                        inbox.put_nowait(message, size)
                    if size:
                        self.port.grew()
                    if INLINE_READS and app_waits and self.close_code is None:
                        return  # the app waits in receive(): it reads inline from here on
                if self.finished and message["type"] == "websocket.disconnect":
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._receive_failed(exc)
        finally:
            self.reading = False
            self._pump_task = None
