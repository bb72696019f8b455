"""The gate: the one path from the middleware and the app to the server's ``send()``.

Every frame for a socket passes through its gate, one at a time and in the order it was handed
over: concurrent ``send()`` calls crash uvicorn's legacy implementation under write backpressure
(``AssertionError`` from ``websockets.legacy.protocol._drain_helper``) and are unordered
elsewhere. The gate also remembers that a close went out, so every close is idempotent, and turns
a transport error into "gone".

The app's sends are written inline when the gate is idle, so the common case costs no task switch.
Frames queued without waiting (pings, hub sends) form the **outbox**, bounded in bytes and written
by a writer task that exists only while there is a backlog. A write that takes longer than
``send_timeout`` marks the socket gone: a peer that stopped reading must not hold a sender forever.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable

from starlette.types import Message, Send

from .errors import ConnectionGoneError
from .memory import Meter


class _Item:
    __slots__ = ("done", "droppable", "message", "size")

    def __init__(
        self,
        message: Message,
        size: int,
        done: asyncio.Future[None] | None,
        droppable: bool,
    ) -> None:
        self.message = message
        self.size = size
        self.done = done
        self.droppable = droppable


class Gate:
    """Ordered, close-once access to one socket's ``send``, with a byte-bounded outbox."""

    def __init__(
        self,
        send: Send,
        on_gone: Callable[[BaseException], None],
        *,
        send_timeout: float | None = None,
        meter: Meter | None = None,
    ) -> None:
        self._send = send
        self._meter = meter if meter is not None else Meter()
        self._on_gone = on_gone
        self._send_timeout = send_timeout
        self._queue: deque[_Item] = deque()
        self._busy = False
        self._writer: asyncio.Task[None] | None = None
        self.queued_bytes = 0
        """Payload bytes handed over and not yet written (the one in flight included)."""
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_written = False
        self._close_queued = False
        self._idle_waiters: list[asyncio.Future[None]] = []
        self.gone = False
        self.timed_out = False

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
        if self.timed_out:
            return ConnectionGoneError("websocket send timed out: the peer is not reading")
        return ConnectionGoneError("websocket peer has gone")

    async def send(self, message: Message, size: int = 0) -> None:
        """Send a frame after every frame handed over before it.

        Raises:
            ConnectionGoneError: the socket is closed or its peer has gone; stop sending.
        """
        if not self.open:
            raise self._refuse()
        if self._busy or self._queue:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append(_Item(message, size, done, False))
            self._account(size)
            self._kick()
            await done
            return
        self._busy = True
        self._account(size)
        try:
            await self._write(message)
        finally:
            self._busy = False
            self._account(-size)
            self._kick()

    def send_nowait(self, message: Message, size: int = 0, *, droppable: bool = False) -> bool:
        """Queue a frame without waiting; returns ``False`` when the socket takes no more.

        ``droppable`` frames (hub sends) may be removed again by ``drop_oldest``; control frames
        (pings, pongs) may not.
        """
        if not self.open:
            return False
        self._queue.append(_Item(message, size, None, droppable))
        self._account(size)
        self._kick()
        return True

    def drop_oldest(self, needed: int) -> tuple[int, int]:
        """Drop the oldest droppable frames until ``needed`` bytes were freed.

        Returns how many frames and bytes were dropped.
        """
        kept: deque[_Item] = deque()
        frames = freed = 0
        while self._queue:
            item = self._queue.popleft()
            if freed < needed and item.droppable:
                frames += 1
                freed += item.size
                continue
            kept.append(item)
        self._queue = kept
        self._account(-freed)
        return frames, freed

    def _account(self, delta: int) -> None:
        self.queued_bytes += delta
        self._meter.outbox += delta

    def seal(self, code: int, reason: str = "", *, discard: bool = False) -> bool:
        """Take no more data frames; the close frame follows with ``queue_close``.

        Returns ``False`` when the gate was sealed already or the peer left. With ``discard``,
        frames still waiting are dropped (their senders get ``ConnectionGoneError``).
        """
        if self.close_code is not None or self.gone:
            return False
        self.close_code = code
        self.close_reason = reason
        if discard:
            self._fail_queued()
        return True

    def queue_close(self) -> bool:
        """Queue the close frame of a sealed gate (once); ``False`` if not sealed or done."""
        if self.close_code is None or self.gone or self._close_queued:
            return False
        self._close_queued = True
        message = {"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}
        self._queue.append(_Item(message, 0, None, False))
        self._kick()
        return True

    def close_nowait(self, code: int, reason: str = "", *, discard: bool = False) -> bool:
        """Seal and queue the close frame; ``False`` when already closing or the peer left.

        With ``discard``, frames still waiting are dropped so the close goes out next: used
        when the middleware ends a connection that will not be served any further.
        """
        if not self.seal(code, reason, discard=discard):
            return False
        return self.queue_close()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every frame handed over is written (or failed).

        Returns ``False`` if ``timeout`` ran out first.
        """
        if not self._busy and not self._queue:
            return True
        idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle_waiters.append(idle)
        try:
            await asyncio.wait_for(asyncio.shield(idle), timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            if idle in self._idle_waiters:
                self._idle_waiters.remove(idle)
        return True

    def _wake_idle(self) -> None:
        if self._busy or self._queue:
            return
        while self._idle_waiters:
            waiter = self._idle_waiters.pop()
            if not waiter.done():
                waiter.set_result(None)

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
            item = self._queue.popleft()
            self._account(-item.size)
            if item.done is not None and not item.done.done():
                item.done.set_exception(self._refuse())
        self._wake_idle()

    def _kick(self) -> None:
        if not self._queue and not self._busy:
            self._wake_idle()
        elif self._queue and not self._busy and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(), name="asgi_ws_stabilizer:writer"
            )

    async def _drain(self) -> None:
        try:
            while self._queue:
                item = self._queue.popleft()
                done = item.done
                self._busy = True
                try:
                    await self._write(item.message)
                except Exception as exc:  # gone, or an invalid frame its sender must hear of
                    if done is not None and not done.done():
                        done.set_exception(exc)
                else:
                    if done is not None and not done.done():
                        done.set_result(None)
                finally:
                    self._busy = False
                    self._account(-item.size)
        finally:
            self._writer = None
            self._wake_idle()

    async def _write(self, message: Message) -> None:
        if self.gone or self.close_written:
            raise self._refuse()
        try:
            if self._send_timeout is None:
                await self._send(message)
            else:
                await self._send_within(message, self._send_timeout)
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
        if message["type"] == "websocket.close":
            self.close_written = True

    async def _send_within(self, message: Message, timeout: float) -> None:
        # asyncio.timeout() is 3.11+; this is the same idea: cancel the writing task when the
        # deadline passes and turn that cancellation into "gone".
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        handle = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            await self._send(message)
        except asyncio.CancelledError:
            if not expired:
                raise
            if sys.version_info >= (3, 11):
                task.uncancel()
            self.timed_out = True
            raise TimeoutError(f"send did not finish within {timeout} s") from None
        finally:
            handle.cancel()

    def _went(self, exc: BaseException) -> None:
        if not self.gone:
            self.mark_gone()
            self._on_gone(exc)
