"""The gate: the one path from the middleware and the app to the server's ``send()``.

Every frame for a socket passes through its gate, one at a time and in the order it was handed
over: concurrent ``send()`` calls crash uvicorn's legacy implementation under write backpressure
(``AssertionError`` from ``websockets.legacy.protocol._drain_helper``) and are unordered
elsewhere. The gate also remembers that a close went out, so every close is idempotent, and turns
a transport error into "gone".

The app's sends are written inline when the gate is idle, so the common case costs no task switch;
frames queued without waiting (pings, and later hub sends) are written by a writer task that exists
only while such a backlog exists.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from starlette.types import Message, Send

from .errors import ConnectionGoneError


class Gate:
    """Ordered, close-once access to one socket's ``send``."""

    def __init__(self, send: Send, on_gone: Callable[[BaseException], None]) -> None:
        self._send = send
        self._on_gone = on_gone
        self._queue: deque[tuple[Message, asyncio.Future[None] | None]] = deque()
        self._busy = False
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_written = False
        self.gone = False

    @property
    def open(self) -> bool:
        """Whether data frames may still be sent."""
        return self.close_code is None and not self.gone

    @property
    def backlog(self) -> int:
        """Frames waiting to be written."""
        return len(self._queue)

    @property
    def writer(self) -> asyncio.Task[None] | None:
        """The writer task, while a backlog is being written."""
        return self._writer

    def _refuse(self) -> ConnectionGoneError:
        if self.close_code is not None:
            return ConnectionGoneError(
                f"websocket is closed (code {self.close_code})", code=self.close_code
            )
        return ConnectionGoneError("websocket peer has gone")

    async def send(self, message: Message) -> None:
        """Send a frame after every frame handed over before it.

        Raises:
            ConnectionGoneError: the socket is closed or its peer has gone; stop sending.
        """
        if not self.open:
            raise self._refuse()
        if self._busy or self._queue:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append((message, done))
            self._kick()
            await done
            return
        self._busy = True
        try:
            await self._write(message)
        finally:
            self._busy = False
            self._kick()

    def send_nowait(self, message: Message) -> bool:
        """Queue a frame without waiting; returns ``False`` when the socket no longer takes any."""
        if not self.open:
            return False
        self._queue.append((message, None))
        self._kick()
        return True

    def close_nowait(self, code: int, reason: str = "", *, discard: bool = False) -> bool:
        """Queue the close frame; returns ``False`` when one was already queued or the peer left.

        With ``discard``, frames still waiting are dropped (their senders get
        ``ConnectionGoneError``) so the close goes out next: used when the middleware ends a
        connection that will not be served any further.
        """
        if self.close_code is not None or self.gone:
            return False
        self.close_code = code
        self.close_reason = reason
        if discard:
            self._fail_queued()
        self._queue.append(({"type": "websocket.close", "code": code, "reason": reason}, None))
        self._kick()
        return True

    async def close(self, code: int, reason: str = "", *, timeout: float | None = None) -> bool:
        """Queue the close frame and wait (up to ``timeout``) until it is written or fails."""
        if not self.close_nowait(code, reason):
            return False
        await self.flush(timeout)
        return True

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is written; returns ``False`` if ``timeout`` ran out first."""
        writer = self._writer
        if writer is None:
            return True
        done, _ = await asyncio.wait({writer}, timeout=timeout)
        return bool(done)

    def mark_gone(self) -> None:
        """The peer has gone: drop the backlog, refuse further frames."""
        if self.gone:
            return
        self.gone = True
        self._fail_queued()

    def abandon(self) -> None:
        """Stop the writer and drop the backlog (teardown after the app has returned)."""
        self._fail_queued()
        if self._writer is not None:
            self._writer.cancel()

    def _fail_queued(self) -> None:
        while self._queue:
            _, done = self._queue.popleft()
            if done is not None and not done.done():
                done.set_exception(self._refuse())

    def _kick(self) -> None:
        if self._queue and not self._busy and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="asgi_ws_stabilizer:writer"
            )

    async def _drain(self) -> None:
        try:
            while self._queue:
                message, done = self._queue.popleft()
                self._busy = True
                try:
                    await self._write(message)
                except ConnectionGoneError as exc:
                    if done is not None and not done.done():
                        done.set_exception(exc)
                except Exception as exc:  # an invalid frame: its sender must hear of it
                    if done is not None and not done.done():
                        done.set_exception(exc)
                else:
                    if done is not None and not done.done():
                        done.set_result(None)
                finally:
                    self._busy = False
        finally:
            self._writer = None

    async def _write(self, message: Message) -> None:
        if self.gone:
            raise self._refuse()
        is_close = message["type"] == "websocket.close"
        if self.close_written:
            raise self._refuse()
        try:
            await self._send(message)
        except OSError as exc:
            # ASGI 2.4: a send on a closed connection raises an OSError subclass
            # (uvicorn's ClientDisconnected).
            self._went(exc)
            raise self._refuse() from exc
        except RuntimeError as exc:
            # Servers raise RuntimeError for a send after their own close (uvicorn) or after
            # the transport went away (granian): the socket is gone either way.
            if message["type"] in ("websocket.send", "websocket.close"):
                self._went(exc)
                raise self._refuse() from exc
            raise
        if is_close:
            self.close_written = True

    def _went(self, exc: BaseException) -> None:
        if not self.gone:
            self.mark_gone()
            self._on_gone(exc)
