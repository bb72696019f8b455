"""The gate: the one path from the middleware and the app to the server's ``send()``.

Every frame for a socket passes through its gate, one at a time and in the order it was handed
over: concurrent ``send()`` calls crash uvicorn's legacy implementation under write backpressure
(``AssertionError`` from ``websockets.legacy.protocol._drain_helper``) and are unordered
elsewhere. The gate also remembers that a close went out, so every close is idempotent, and turns
a transport error into "gone".

Frames queued without waiting (pings, hub sends) form the **outbox**, bounded in bytes. A write
that takes longer than ``send_timeout`` marks the socket gone (a stalled peer holds no sender).

Writes are started synchronously, by stepping the server's ``send()`` once by hand; only a write
that really blocks gets a writer task and a timeout (writer.py drives the server's ``send()``).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from starlette.types import Message, Send

from ..core.memory import Meter
from ..errors import ConnectionGoneError
from .backlog import Backlog, Item
from .writer import DONE, Resume, ended_send, finish, start

GIVE_UP_WAIT = 1.0  # seconds give_up waits for a cancelled write to leave the server's send


class GateOwner(Protocol):
    """Who hears that the transport failed under a write: the connection (an object, not a
    callback, as a bound method per socket would cost 64 bytes each)."""

    def transport_failed(self, exc: BaseException) -> None: ...


class Gate(Backlog):
    """Ordered, close-once access to one socket's ``send``, with a byte-bounded outbox.

    The frames waiting and their bytes are kept by ``Backlog`` (backlog.py), which this extends.
    """

    __slots__ = (
        "_close_queued",
        "_owner",
        "_send",
        "_send_timeout",
        "_writer",
        "close_code",
        "close_reason",
        "close_written",
        "gone",
        "timed_out",
    )

    def __init__(
        self,
        send: Send,
        owner: GateOwner,
        *,
        send_timeout: float | None = None,
        meter: Meter | None = None,
    ) -> None:
        super().__init__(meter if meter is not None else Meter())
        self._send = send
        self._owner = owner
        self._send_timeout = send_timeout
        self._writer: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_written = False
        self._close_queued = False
        self.gone = False
        self.timed_out = False

    @property
    def open(self) -> bool:
        """Whether data frames may still be sent."""
        return self.close_code is None and not self.gone

    @property
    def writer(self) -> asyncio.Task[None] | None:
        """The writer task, while a blocked backlog is being written."""
        return self._writer

    def _refuse(self) -> ConnectionGoneError:
        if self.close_code is not None:
            return ConnectionGoneError(
                f"websocket is closed (code {self.close_code})", code=self.close_code
            )
        if self.timed_out:
            return ConnectionGoneError("websocket send timed out: the peer is not reading")
        return ConnectionGoneError("websocket peer has gone")

    # -- sending ----------------------------------------------------------------------------

    def refuse_if_closed(self) -> None:
        """Raise what ``send`` would raise on a closed socket.

        Raises:
            ConnectionGoneError: the socket is closed or its peer has gone; stop sending.
        """
        if self.close_code is not None or self.gone:
            raise self._refuse()

    async def send(self, message: Message, size: int = 0) -> None:
        """Send a frame after every frame handed over before it.

        Raises:
            ConnectionGoneError: the socket is closed or its peer has gone; stop sending.
        """
        if self.close_code is not None or self.gone:
            raise self._refuse()
        if self.busy or self.waiting:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._append(Item(message, size, done, False))
            self._kick()
            await done
            return
        self.busy = True
        try:
            blocked = self._start(message)
        finally:
            self.busy = False
        if blocked is None:
            if self.waiting or self._idle_waiters:
                self._kick()
            return
        # The server made us wait (backpressure): finish_write holds the gate busy and counts
        # the frame as held until it is out.
        await self.finish_write(blocked, message, size)

    async def finish_write(self, blocked: Resume, message: Message, size: int) -> None:
        """Finish a write of the app's that the server made wait (aio/sending.py started it
        on an idle gate, with nothing awaited since): later frames wait behind it."""
        self.busy = True
        self._account(size)
        try:
            await self._finish(blocked, message)
        finally:
            self.busy = False
            self._account(-size)
            self._kick()

    def send_nowait(self, message: Message, size: int = 0, *, droppable: bool = False) -> bool:
        """Hand over a frame without waiting; ``False`` when the socket takes no more.

        An idle gate writes it at once when the server can take it without waiting; otherwise
        it joins the outbox. ``droppable`` frames (hub sends) may be removed again by
        ``drop_oldest``; control frames (pings, pongs) may not.
        """
        if self.close_code is not None or self.gone:
            return False
        if self.busy or self.waiting:
            self._append(Item(message, size, None, droppable))
            self._kick()
            return True
        if self.close_written:
            return True  # handed over; the socket is closed (the frame goes nowhere)
        # ``_start`` and writer.start, inlined: this runs once per socket of every fan-out,
        # where the calls showed in the profile. Kept in step with them.
        try:
            step = self._send(message).__await__()
            yielded = next(step, DONE)  # DONE, not StopIteration, when the write completed
        except (OSError, RuntimeError) as exc:
            failure = self.failed(exc, message)
            if isinstance(failure, ConnectionGoneError):
                return True  # handed over; the socket turned out to be gone (the owner was told)
            raise failure from exc
        if yielded is DONE:
            if message["type"] == "websocket.close":
                self.close_written = True
            return True
        self.busy = True
        self._account(size)
        self._writer = asyncio.get_running_loop().create_task(
            self._drain(Resume(step, yielded), message, size), name="asgi_ws_stabilizer:writer"
        )
        return True

    def send_once(self, message: Message, size: int = 0) -> bool:
        """``send_nowait``, unless this very frame is still waiting to be written.

        For pongs: one waiting pong answers any number of pings (RFC 6455 section 5.5.3), so
        a client that floods pings and never reads holds one pong in the outbox, not one each.
        """
        if self._once is message:
            return True
        if self.open and (self.busy or self.waiting):
            self._once = message  # it will wait in the outbox (send_nowait queues it)
        return self.send_nowait(message, size)

    # -- closing ----------------------------------------------------------------------------

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
            self._fail_queued(self._refuse)
        return True

    def queue_close(self) -> bool:
        """Queue the close frame of a sealed gate (once); ``False`` if not sealed or done."""
        if self.close_code is None or self.gone or self._close_queued:
            return False
        self._close_queued = True
        message = {"type": "websocket.close", "code": self.close_code, "reason": self.close_reason}
        self._append(Item(message, 0, None, False))
        self._kick()
        return True

    def close_nowait(self, code: int, reason: str = "", *, discard: bool = False) -> bool:
        """Seal and queue the close frame; ``False`` when already closing or the peer left.
        With ``discard``, frames still waiting are dropped so the close goes out next (for a
        connection that will not be served any further)."""
        if not self.seal(code, reason, discard=discard):
            return False
        return self.queue_close()

    async def give_up(self) -> None:
        """Stop waiting for a blocked write (the peer stopped reading) and hand the close
        frame that waited behind it to the server anyway (``hand_over_close``)."""
        close = None
        if self._close_queued and self.close_code is not None and not self.gone:
            close = (self.close_code, self.close_reason)
        writer = self._writer
        self.abandon()
        if writer is not None and not writer.done():
            # Let it unwind out of the server's send first: that releases the server's own
            # send lock (hypercorn), so the close frame can be written behind the data.
            await asyncio.wait({writer}, timeout=GIVE_UP_WAIT)
        if close is not None:
            self.hand_over_close(*close)

    def hand_over_close(self, code: int, reason: str = "") -> None:
        """Give the server a close frame without waiting for it to be written.

        Servers take the close at once: hypercorn marks the socket closed before it writes, so
        it no longer closes 1011 ("internal error") when the handler returns; it writes the
        frame behind the data in its buffers, for the peer to read if it ever reads again. A
        write that has to wait is cancelled as a task cancellation would be; nothing awaited.
        """
        if self.close_written:
            return
        message = {"type": "websocket.close", "code": code, "reason": reason}
        try:
            blocked = start(self._send, message)
            if blocked is None:
                self.close_written = True
                return
            blocked.cancel()
        except Exception:  # the server has let go of the socket itself: nothing to hand over
            return

    def mark_gone(self) -> None:
        """The peer has gone: drop the backlog, refuse further frames."""
        if self.gone:
            return
        self.gone = True
        self._fail_queued(self._refuse)

    def abandon(self, *, final: bool = False) -> None:
        """Stop the writer and drop the backlog (teardown after the app has returned). The owner
        (which holds this gate) is let go, and when ``final`` the server's ``send`` too
        (writer.ended_send): refcounting frees them all, no collector pass."""
        if final:
            self._send = ended_send
        self._owner = NOBODY
        self._fail_queued(self._refuse)
        if self._writer is not None:
            self._writer.cancel()

    # -- internals --------------------------------------------------------------------------

    def _kick(self) -> None:
        if not self.waiting:
            if not self.busy:
                self._wake_idle()
        elif not self.busy and self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._drain(None, None, 0), name="asgi_ws_stabilizer:writer"
            )

    async def _drain(self, blocked: Resume | None, message: Message | None, size: int) -> None:
        """Finish a blocked write (if any), then write the backlog in order."""
        try:
            if blocked is not None and message is not None:
                try:
                    await self._finish(blocked, message)
                except Exception:
                    pass  # gone: _went() has told the connection
                finally:
                    self.busy = False
                    self._account(-size)
            queue = self.waiting
            while queue:
                item = queue.popleft()
                if item.message is self._once:
                    self._once = None
                done = item.done
                self.busy = True
                try:
                    blocked = self._start(item.message)
                    if blocked is not None:
                        await self._finish(blocked, item.message)
                except Exception as exc:  # gone, or an invalid frame its sender must hear of
                    if done is not None and not done.done():
                        done.set_exception(exc)
                else:
                    if done is not None and not done.done():
                        done.set_result(None)
                finally:
                    self.busy = False
                    self._account(-item.size)
                queue = self.waiting
        finally:
            self._writer = None
            self._wake_idle()

    def _start(self, message: Message) -> Resume | None:
        """Step the server's ``send`` once: ``None`` if the frame is out, else the rest."""
        if self.gone or self.close_written:
            raise self._refuse()
        try:
            blocked = start(self._send, message)
        except (OSError, RuntimeError) as exc:
            raise self.failed(exc, message) from exc
        if blocked is None and message["type"] == "websocket.close":
            self.close_written = True
        return blocked

    async def _finish(self, blocked: Resume, message: Message) -> None:
        """Await the rest of a write that blocked, within ``send_timeout``."""
        try:
            await finish(blocked, self._send_timeout, self._timed_out)
        except (OSError, RuntimeError) as exc:
            raise self.failed(exc, message) from exc
        if message["type"] == "websocket.close":
            self.close_written = True

    def failed(self, exc: BaseException, message: Message) -> BaseException:
        """The server's ``send`` raised ``exc`` writing ``message``: what to raise instead."""
        # ASGI 2.4: a send on a closed connection raises an OSError subclass (uvicorn's
        # ClientDisconnected); servers raise RuntimeError for a send after their own close
        # (uvicorn) or after the transport went away (granian). A timeout is an OSError too.
        if isinstance(exc, OSError) or message["type"] in ("websocket.send", "websocket.close"):
            if not self.gone:
                self.mark_gone()
                self._owner.transport_failed(exc)
            return self._refuse()
        return exc

    def _timed_out(self) -> None:
        # finish() calls this when send_timeout ran out, before it raises TimeoutError.
        self.timed_out = True


class _Nobody:
    """The owner of an abandoned gate."""

    __slots__ = ()

    def transport_failed(self, exc: BaseException) -> None:
        pass


NOBODY = _Nobody()
