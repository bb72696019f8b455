"""The app's ``send`` on one connection: its data through the gate, its accept and its close.

A base class of ``Connection`` (aio/connection.py), as ``Reader`` (aio/reader.py) is for the
reading side: the app's ``send`` runs once per message, where an object of its own and a hop per
message would show in the benchmarks.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from starlette.types import Message, Send

from ..codes import CLOSE_TIMEOUT, CloseCode
from ..core.messages import payload_size
from ..core.state import CONNECTING, REFUSED, State
from ..errors import ConnectionGoneError
from ..observe.traffic import Traffic
from ..resume.sessions import Session
from .gate import Gate
from .port import HubPort
from .writer import DONE, Resume

SEND_BURST = 32
"""An app's send that did not wait yields to the event loop once every this many messages."""


class AppSender(ABC):
    """The sending side of a connection: ``Connection`` is one."""

    __slots__ = ()

    # Provided by the connection.
    port: HubPort[Any]
    state: State
    gate: Gate
    session: Session | None
    traffic: Traffic
    server_send: Send
    """The server's ``send``."""
    _pending_close: tuple[int, str, str] | None

    @abstractmethod
    def _to(self, new: State) -> bool:
        """Move to ``new`` if that transition is allowed."""

    @abstractmethod
    def _opened(self) -> None:
        """The accept went out: the connection is open."""

    @abstractmethod
    def read_since_burst(self) -> bool:
        """Whether the app read data since the last SEND_BURST check (this one counts)."""

    @abstractmethod
    def mark_closing(self, code: int, reason: str, by: str) -> None:
        """Record the close and move ``OPEN`` to ``CLOSING``."""

    async def send(self, message: Message) -> None:
        """The app's ``send``."""
        kind = message["type"]
        if kind == "websocket.send":
            if self.state is CONNECTING:
                # Let the server report the protocol error in its own words.
                await self.server_send(message)
                return
            # payload_size(message), inlined for text (the common case): once per message sent.
            text = message.get("text")
            if text is None:
                size = payload_size(message)
            else:
                size = len(text) if text.isascii() else len(text.encode())
            gate = self.gate
            session = self.session
            if session is not None:
                if session.shared:
                    # Into the session's log in the broker first, then to this socket in the
                    # log's order (the hub's outbox counts it then).
                    await self.port.send_shared(self, message, size)
                    return
                if gate.open:
                    session.record(message, size)
            started = False
            if (
                gate.busy
                or gate.waiting
                or gate.close_code is not None
                or gate.gone
                or gate.close_written
            ):
                await gate.send(message, size)  # in turn, or refused (gone, closing)
            else:
                # The gate is idle: step the server's send once by hand (writer.start, inlined:
                # once per message). Usually the frame is out at once, nothing to await.
                try:
                    step = self.server_send(message).__await__()
                    yielded = next(step, DONE)  # DONE, not StopIteration, when it completed
                except (OSError, RuntimeError) as exc:
                    raise gate.failed(exc, message) from exc
                if yielded is DONE:
                    started = True
                else:
                    await gate.finish_write(Resume(step, yielded), message, size)
            traffic = self.traffic
            traffic.messages_out += 1
            traffic.bytes_out += size
            # A send loop whose writes never wait never lets the loop run, so never learns that
            # its peer left (hypercorn makes sends to a closed socket silent no-ops; only our
            # reader sees it): a loop turn every SEND_BURST messages, unless the app read
            # meanwhile (reads wait once the server has nothing queued, and the loop runs then:
            # a request/response handler needs no turn of its own).
            if started and not traffic.messages_out % SEND_BURST and not self.read_since_burst():
                await asyncio.sleep(0)
        elif kind == "websocket.accept" and self.state is CONNECTING:
            if self._pending_close is not None:
                code, reason, _ = self._pending_close
                self._to(REFUSED)
                await self.server_send({"type": "websocket.close", "code": code, "reason": reason})
                raise ConnectionGoneError(
                    f"websocket was closed ({code}) before the app accepted it", code=code
                )
            await self.server_send(message)
            self._opened()
            await self.port.connected(self)
        elif kind == "websocket.close":
            if self.state is CONNECTING:
                self._to(REFUSED)
                await self.server_send(message)
                return
            code = int(message.get("code") or CloseCode.NORMAL)
            reason = message.get("reason") or ""
            if self.gate.close_nowait(code, reason):
                self.mark_closing(code, reason, "app")
                await self.gate.flush(CLOSE_TIMEOUT)
        else:
            if kind.startswith("websocket.http.response") and self.state is CONNECTING:
                self._to(REFUSED)
            await self.server_send(message)
