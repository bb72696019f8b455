"""Reading one socket: inline by the app, or by the pump.

Someone must always be reading the server's ``receive()``, or pongs and disconnects go unseen
(uvicorn stops reading a socket until the app calls ``receive()``). When the app is waiting in
``receive()``, it reads the server itself ("inline"): no task switch per message, and no pump task
for a socket whose handler sits in ``receive()``. Whenever a message has been handed to the app
and the app is not back in ``receive()`` soon (aio/readers.py), the pump task takes over and feeds
the bounded inbox, until the app waits on the inbox again (aio/pump.py). Only one of the two
ever awaits the server's ``receive()`` at a time (``reading``).

Every inbound message is classified by ``InboundRules`` (core/inbound.py); the reader acts on it:
heartbeat frames are answered and hidden, data goes to the app, a message over a limit ends the
connection. The common case, ordinary data on a socket without our heartbeat, a rate limit or a
close under way, is classified inline in ``receive``, in the app's own frame.
"""

from __future__ import annotations

import asyncio
import sys
from abc import abstractmethod
from collections.abc import Awaitable
from typing import Any, Protocol

from starlette.types import Message, Receive

from ..codes import CloseCode
from ..config.settings import StabilizerSettings
from ..core.heartbeat import HeartbeatState
from ..core.inbound import DATA, PING, PONG, RATE_LIMITED, TOO_BIG, Inbound, InboundRules
from ..core.ratelimit import TokenBucket
from ..observe.events import Events
from ..observe.log import EventLog
from ..observe.traffic import Traffic
from .gate import Gate
from .inbox import Inbox
from .inline import DISCONNECTED, INLINE_READS, loop_clock, running_task
from .port import HeartbeatTexts
from .pump import Pump
from .readers import ReaderWatch


class ReaderServices(Protocol):
    """What the reader needs of the hub (the hub's ``HubPort`` has all of it)."""

    @property
    def events(self) -> Events: ...
    @property
    def readers(self) -> ReaderWatch: ...
    @property
    def texts(self) -> HeartbeatTexts: ...
    @property
    def rules(self) -> InboundRules: ...
    @property
    def settings(self) -> StabilizerSettings: ...

    def clock_now(self) -> float: ...
    def clock_at(self, loop_time: float) -> float: ...
    def grew(self) -> None: ...


class Reader(Pump):
    """The reading side of a connection: ``Connection`` (aio/connection.py) is one; the pump
    (aio/pump.py) is its base.

    A base class rather than an object of its own: it runs once per inbound message, where an
    extra object per socket and a hop per message would show in the benchmarks.
    """

    __slots__ = (
        "_bucket",
        "_interrupted",
        "_loop",
        "_now",
        "_task",
        "last_active",
        "quick",
    )

    # Provided by the connection.
    port: ReaderServices
    inbox: Inbox
    gate: Gate
    heartbeat: HeartbeatState
    traffic: Traffic
    client_id: str
    beating: bool
    """Whether the socket gets our text heartbeat."""
    close_code: int | None
    """Known once a close is under way (or done)."""
    _receive: Receive

    def _start_reader(self) -> None:
        """Set up the reading side (from the connection's ``__init__``)."""
        self._loop = loop = asyncio.get_running_loop()
        self._now = loop_clock(loop)
        self.last_active = self._now()
        """When the client last sent data (loop time), for ``memory_eviction_policy="lru"``."""
        settings = self.port.settings
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.burst, self._loop.time())
            if settings.rate_limit is not None
            else None
        )
        """This socket's rate limit (``rate_limit``), if any."""
        self.reading = False
        """Whether the app (inline) or the pump awaits the server's ``receive()`` now."""
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False
        self._pump_task: asyncio.Task[None] | None = None
        self.quick = False
        """Whether the app's next ``receive`` may take the short way: the socket is open, its
        connect message handed over, it gets no heartbeat, has no rate limit and is not
        closing (the connection keeps it up to date)."""

    @property
    @abstractmethod
    def log(self) -> EventLog:
        """The connection's log."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """Whether the connection has ended."""

    @abstractmethod
    def start_beating(self) -> None:
        """Send the socket the text heartbeat from now on."""

    @abstractmethod
    def watch(self, deadline: float) -> None:
        """Look at the heartbeat again at ``deadline``."""

    @abstractmethod
    def peer_left(self, message: Message) -> None:
        """The server reported the disconnect in ``message``."""

    @abstractmethod
    def abort(self, code: int, reason: str) -> None:
        """End the connection with ``code``: close frame out next."""

    async def receive(self) -> Message:
        """The app's ``receive``.

        The common case runs in this one frame: an open socket that nobody else reads, whose
        next message is ordinary data (``quick``). Everything else goes to ``receive_other``
        (before the accept) or ``read()``.
        """
        if not self.quick or self.reading or not self.inbox.idle:
            return await self.receive_other()
        # Nobody reads the server now: the app reads it itself. (The watch may still hold it from
        # its last message, and leaves it be while ``reading``: not taken out per message.)
        self.reading = True
        task = self._task = running_task(self._loop)  # the loop given: no get_running_loop()
        try:
            message = await self._receive()
        except BaseException as exc:
            self.reading = False
            self._task = None
            if not self._read_failed(exc, task):
                raise
            return await self.inbox.get()  # the disconnect
        self.reading = False
        self._task = None
        # inbound() and InboundRules.classify, inlined for the common case (kept in step with
        # them): an ASCII text within the size limit that is not the ping text, on a socket
        # that is still ``quick``. Only a ``websocket.receive`` carries "text" (ASGI).
        text = message.get("text")
        port = self.port
        rules = port.rules
        if (
            text is not None
            and self.quick
            and text.isascii()
            and len(text) <= rules.size_limit
            and text != rules.ping
        ):
            self.last_active = self._now()
            traffic = self.traffic
            traffic.messages_in += 1
            traffic.bytes_in += len(text)
            readers = port.readers
            if readers.armed is not None:
                # ReaderWatch.add, inlined: the timer is armed already (the common case), so
                # only the set needs the reader; saves a call per message.
                readers.unread.add(self)
            else:
                readers.add(self)
            return message
        if self.inbound(message) >= 0:
            port.readers.add(self)
            return message
        if (final := self.inbox.final_now()) is not None:
            return final  # the disconnect (every socket's last), without one more frame
        return await self.read()  # a frame that was not for the app: read on

    @abstractmethod
    def receive_other(self) -> Awaitable[Message]:
        """The app's ``receive`` when it is not ``quick``: before the accept, and when the
        socket gets our heartbeat, has a rate limit or is closing."""

    def _read_failed(self, exc: BaseException, task: asyncio.Task[Any] | None) -> bool:
        """The server's ``receive()`` raised ``exc`` in an inline read: ``True`` when the app
        is to get the disconnect, ``False`` when ``exc`` is for the app (raise it on)."""
        if isinstance(exc, asyncio.CancelledError):
            if not self._interrupted or task is None:
                return False
            # Our own interruption (the middleware ended the connection meanwhile), not a
            # cancellation of the app: swallow it and hand over the disconnect.
            self._interrupted = False
            if sys.version_info >= (3, 11):
                task.uncancel()
            return True
        if isinstance(exc, Exception):
            self._receive_failed(exc)
            return True
        return False

    async def read(self) -> Message:
        """The app's ``receive`` once the socket is open (when it is not ``quick``)."""
        inbox = self.inbox
        if self.reading or not INLINE_READS or not inbox.idle:
            return await inbox.get()
        readers = self.port.readers
        task = running_task(self._loop)
        self.reading = True
        self._task = task
        try:
            # The inbox is idle, so not finished: it is looked at again only after a message
            # that was not for the app.
            while True:
                try:
                    message = await self._receive()
                except BaseException as exc:
                    if not self._read_failed(exc, task):
                        raise
                    break
                if self.inbound(message) >= 0:
                    readers.add(self)
                    return message
                if inbox.finished:
                    break
        finally:
            self.reading = False
            self._task = None
        return await inbox.get()  # the disconnect (no one reads after it: the server closes)

    def inbound(self, message: Message) -> int:
        """Act on one server message; its payload size if the app should get it, else -1."""
        kind = message["type"]
        if kind != "websocket.receive":
            if kind == "websocket.disconnect":
                self.peer_left(message)
            return -1
        raw = self._now()
        if self.beating:
            what, size = self._beating_classify(message, raw)
        else:
            what, size = self.port.rules.classify(
                message, raw, self._bucket, False, self.close_code is not None
            )
        if what is DATA:  # here, not in _act: once per message, where a call would show
            self.last_active = raw
            traffic = self.traffic
            traffic.messages_in += 1
            traffic.bytes_in += size
            return size
        return self._act(what, size, raw)

    def _beating_classify(self, message: Message, raw: float) -> tuple[Inbound, int]:
        """``classify`` for a socket that gets our text heartbeat, with its bookkeeping: a
        pong completes a round trip, any other frame is a sign of life."""
        services = self.port
        heartbeat = self.heartbeat
        now = services.clock_at(raw)
        if heartbeat.ping_sent_at is not None:
            # A sign of life after our ping: the next ping is due an interval after it,
            # not when the ping's timeout would have run out (with timeout > interval,
            # pings would come every timeout, past a proxy's idle limit).
            self.watch(now + heartbeat.interval)
        what, size = services.rules.classify(
            message, raw, self._bucket, True, self.close_code is not None
        )
        if what is PONG:
            rtt = heartbeat.saw_pong(now)
            if rtt is not None:
                services.events.rtt(rtt)
        else:
            heartbeat.last_seen = now  # HeartbeatState.saw_frame, inlined: once per message
            heartbeat.ping_sent_at = None
        return what, size

    def _act(self, what: Inbound, size: int, raw: float) -> int:
        """Act on a classified ``websocket.receive`` other than data (a pong needs nothing
        more); always -1: nothing for the app."""
        services = self.port
        if what is PING:
            if not self.beating:
                # A client that pings us speaks the text heartbeat: it gets ours too.
                self.start_beating()
            # A pong is only queued while the outbox has room, and one waiting pong answers
            # every ping behind it: a ping flood from a client that never reads must not grow
            # the outbox unseen.
            texts = services.texts
            room = services.settings.max_send_queue
            if room is None or self.gate.queued_bytes + texts.pong_size <= room:
                self.gate.send_once(texts.pong, texts.pong_size)
        elif what is RATE_LIMITED:
            settings = services.settings
            services.events.rate_limited(
                self.log,
                client_id=self.client_id,
                rate_limit=settings.rate_limit,
                burst=settings.burst,
            )
            self.abort(CloseCode.RATE_LIMITED, "rate limit exceeded")
        elif what is TOO_BIG:
            self.last_active = raw
            limit = services.rules.max_size
            services.events.oversized(self.log, size=size, limit=limit or 0)
            self.abort(
                CloseCode.MESSAGE_TOO_BIG,
                f"message of {size} bytes exceeds limit of {limit} bytes",
            )
        return -1

    def interrupt_read(self) -> None:
        """Wake an app blocked in an inline read, so it gets the disconnect now."""
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._interrupted = True
            task.cancel()

    def _receive_failed(self, exc: Exception) -> None:
        """The server's ``receive()`` raised: the socket is unusable, as if the peer left."""
        self.log.debug("receive_failed", error=type(exc).__name__)
        self.peer_left(DISCONNECTED)
