"""One WebSocket connection: the pump, the gate and the app's view of the socket.

Created per socket inside ``StabilizerMiddleware.__call__``; nothing per-connection lives on the
middleware. The app talks to ``receive``/``send`` below instead of the server's:

* before accept, ``receive`` passes straight through to the server;
* at accept, the **pump** task takes over the server's ``receive()``: it answers and hides
  heartbeat frames, records liveness, enforces the inbound size limit and notices a disconnect at
  once, feeding the bounded inbox that the app's ``receive`` now reads;
* every send, the app's and the middleware's own, goes through the **gate**.

When the app returns or raises, the middleware sends the close itself (1000 or 1011): servers
otherwise give 1006, 1011, an empty close or nothing (``reference/asgi-facts.md`` 2.6 and 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn

from starlette.types import ASGIApp, Message, Receive, Send
from starlette.websockets import WebSocketDisconnect

from .admission import Refusal, deny
from .codes import CLOSE_TIMEOUT, CloseCode
from .errors import ConnectionGoneError
from .gate import Gate
from .heartbeat import HeartbeatState
from .inbox import Inbox
from .limits import TokenBucket
from .log import EventLog
from .memory import UserData, check_total
from .messages import Delivery, Frame, payload_size
from .stats import Traffic

if TYPE_CHECKING:
    from .handle import ConnectionHandle
    from .hub import Hub
    from .resume import Binding
    from .sessions import Session


SEND_BURST = 32
"""Writes that complete without waiting before an app's send yields to the event loop once."""

SEND_TIMED_OUT = (int(CloseCode.TRY_AGAIN_LATER), "slow consumer: send timed out")
"""The close of a socket whose write did not finish within ``send_timeout``."""


class State(Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    REFUSED = "refused"


INLINE_READS = sys.version_info >= (3, 11)
"""Whether the app may read the server inline: it relies on ``Task.uncancel`` (3.11+) to tell
our own interruption of that read from a cancellation of the app."""


def new_id() -> str:
    """A fresh random id (connection and generated client ids)."""
    return secrets.token_hex(8)


class Connection:
    """The middleware's side of one WebSocket."""

    __slots__ = (
        "__weakref__",
        "_accounted",
        "_beating",
        "_binding",
        "_bucket",
        "_burst",
        "_connect_message",
        "_gone",
        "_handle",
        "_heartbeat_on",
        "_interrupted",
        "_kicked",
        "_loop_time",
        "_max_send_queue",
        "_max_size",
        "_ping",
        "_pong",
        "_pump_task",
        "_reader",
        "_reading",
        "_receive",
        "_send",
        "_slow_policy",
        "accepted_at",
        "client_id",
        "close_code",
        "close_reason",
        "closed_by",
        "connection_id",
        "dropped",
        "finished",
        "gate",
        "groups",
        "heartbeat",
        "hub",
        "inbox",
        "last_active",
        "missed",
        "path",
        "remote_ip",
        "replayed",
        "resume_reason",
        "resumed",
        "scope",
        "session",
        "session_id",
        "state",
        "traffic",
        "user_data",
    )

    def __init__(
        self,
        hub: Hub,
        scope: Any,
        receive: Receive,
        send: Send,
        connect_message: Message,
        *,
        client_id: str | None,
        remote_ip: str,
    ) -> None:
        settings = hub.settings
        self.hub = hub
        self.scope = scope
        self._receive = receive
        self._send = send
        self._connect_message: Message | None = connect_message
        self.connection_id = new_id()
        self.client_id = client_id if client_id is not None else new_id()
        self.session_id = new_id()
        self.remote_ip = remote_ip
        self.path: str = scope.get("path", "")
        self.state = State.CONNECTING
        self.traffic = Traffic()
        self.groups: set[str] = set()  # an empty set is small; groups are common
        self.dropped = 0
        self._accounted = True
        self.user_data = UserData(self._check_user_data, self._user_data_changed)
        self.gate = Gate(
            send, self._transport_failed, send_timeout=settings.send_timeout, meter=hub.meter
        )
        self.inbox = Inbox(settings.receive_queue_size, hub.meter)
        self._max_send_queue = settings.max_send_queue
        self._slow_policy = settings.slow_consumer_policy
        self._loop_time = asyncio.get_running_loop().time
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.burst, self._loop_time())
            if settings.rate_limit is not None
            else None
        )
        self.heartbeat: HeartbeatState = HeartbeatState(
            settings.heartbeat_interval or 0.0, settings.heartbeat_timeout, 0.0
        )
        self._heartbeat_on = settings.heartbeat_enabled
        self._beating = False
        self._burst = 0
        """Whether this socket gets the text heartbeat (pings, 4408): see ``_opened``."""
        self._ping = hub.ping_frame
        self._pong = hub.pong_frame
        self._max_size = settings.max_message_size
        self.last_active = self._loop_time()
        self.accepted_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: str | None = None
        self.finished = False
        self._pump_task: asyncio.Task[None] | None = None
        self._gone: asyncio.Future[None] | None = None
        self._reading = False
        self._reader: asyncio.Task[Any] | None = None
        self._interrupted = False
        self._kicked: tuple[int, str, str] | None = None
        self.session: Session | None = None
        """The resumable session of an opted-in socket (``_stabilizer=1``), else ``None``."""
        self._binding: Binding | None = None
        self.resumed = False
        self.replayed = 0
        self.missed = 0
        self.resume_reason: str | None = None
        self._handle: ConnectionHandle | None = None

    @property
    def log(self) -> EventLog:
        """The hub's log with this connection's id on every event."""
        return self.hub.log.bind(connection_id=self.connection_id)

    # -- the app's view -------------------------------------------------------------------

    @property
    def handle(self) -> ConnectionHandle:
        """The public handle the app sees as ``websocket.state.stabilizer``."""
        if self._handle is None:
            from .handle import ConnectionHandle

            self._handle = ConnectionHandle(self)
        return self._handle

    async def receive(self) -> Message:
        """The app's ``receive``."""
        message = self._connect_message
        if message is not None:
            self._connect_message = None
            return message
        state = self.state
        if state is State.CONNECTING or state is State.REFUSED:
            return await self._receive()
        inbox = self.inbox
        if self._reading or not INLINE_READS or not inbox.idle():
            return await inbox.get()
        # Nobody reads the server now: the app reads it itself (see "reading" below).
        hub = self.hub
        hub._unread.discard(self)
        task = asyncio.current_task(hub._loop)  # with the loop given: 3x cheaper on 3.11
        self._reading = True
        self._reader = task
        try:
            while inbox._final is None:
                try:
                    message = await self._receive()
                except asyncio.CancelledError:
                    if not self._interrupted or task is None:
                        raise
                    # Our own interruption (the middleware ended the connection meanwhile),
                    # not a cancellation of the app: swallow it and hand over the disconnect.
                    self._interrupted = False
                    if sys.version_info >= (3, 11):
                        task.uncancel()
                    break
                except Exception as exc:  # the server's receive failed: the socket is unusable
                    self.log.debug("receive_failed", error=type(exc).__name__)
                    self._peer_left({"type": "websocket.disconnect", "code": 1006, "reason": ""})
                    break
                if self._inbound(message) >= 0:
                    hub._unread.add(self)  # Hub._unattended, inlined: once per message
                    if hub._reader_timer is None:
                        hub._arm_reader_check()
                    return message
        finally:
            self._reading = False
            self._reader = None
        return await inbox.get()  # the disconnect (no one reads after it: the server closes)

    async def send(self, message: Message) -> None:
        """The app's ``send``."""
        kind = message["type"]
        if kind == "websocket.send":
            if self.state is State.CONNECTING:
                # Let the server report the protocol error in its own words.
                await self._send(message)
                return
            size = payload_size(message)
            gate = self.gate
            if self.session is not None and gate.open:
                self.session.buffer.append(message, size)
            started = gate.write_now(message)  # usually True: out at once, nothing to await
            if started is False:
                await gate.send(message, size)
            elif started is not True:
                await gate.finish_write(started, message, size)
            traffic = self.traffic
            traffic.messages_out += 1
            traffic.bytes_out += size
            if started is True:
                # A send loop whose writes all complete at once never lets the loop run, and
                # so never learns that its peer left: hypercorn turns sends to a closed socket
                # into silent no-ops, and only our reader would see the disconnect. Give the
                # loop a turn every SEND_BURST writes that did not wait.
                self._burst += 1
                if self._burst >= SEND_BURST:
                    self._burst = 0
                    await asyncio.sleep(0)
        elif kind == "websocket.accept" and self.state is State.CONNECTING:
            if self._kicked is not None:
                code, reason, _ = self._kicked
                self.state = State.REFUSED
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
                raise ConnectionGoneError(
                    f"websocket was closed ({code}) before the app accepted it", code=code
                )
            await self._send(message)
            self._opened()
            await self.hub._connected(self)
        elif kind == "websocket.close":
            if self.state is State.CONNECTING:
                self.state = State.REFUSED
                await self._send(message)
                return
            code = int(message.get("code") or CloseCode.NORMAL)
            reason = message.get("reason") or ""
            if self.gate.close_nowait(code, reason):
                self._closing(code, reason, "app")
                await self.gate.flush(CLOSE_TIMEOUT)
        else:
            if kind.startswith("websocket.http.response") and self.state is State.CONNECTING:
                self.state = State.REFUSED
            await self._send(message)

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Run the app on this connection and close on its behalf when it ends."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._teardown_now()
            raise
        except BaseException as exc:
            if self._is_departure(exc):
                await self._end(CloseCode.NORMAL, "", by="middleware")
                return
            if self.state is State.CONNECTING or self.state is State.REFUSED:
                self._teardown_now()
                raise
            self.hub.events.app_error(self.log, exc, client_id=self.client_id, path=self.path)
            await self._end(CloseCode.INTERNAL_ERROR, "internal error", by="middleware")
            raise
        else:
            await self._end(CloseCode.NORMAL, "", by="middleware")

    def _is_departure(self, exc: BaseException) -> bool:
        """A disconnect seen by the app, not an app error: log nothing, re-raise nothing."""
        if isinstance(exc, WebSocketDisconnect):
            return True
        if isinstance(exc, ConnectionGoneError):
            return True
        gone = self.gate.gone or self.gate.close_code is not None
        return gone and isinstance(exc, OSError | RuntimeError)

    async def refuse(self, refusal: Refusal) -> NoReturn:
        """End this socket because of ``refusal``, and raise ``ConnectionGoneError``.

        Before accept the handshake is refused as admission would (the HTTP status and
        ``x-stabilizer-reason`` where the server has the denial extension, else 403); after
        it, the socket is closed 1008 (policy violation) with the refusal's detail.
        """
        if self.state is State.CONNECTING:
            self.state = State.REFUSED
            await deny(self.scope, self._send, refusal)
            raise ConnectionGoneError(
                f"websocket refused before accept: {refusal.detail} ({refusal.reason})"
            )
        code = int(CloseCode.POLICY_VIOLATION)
        if self.shed(code, refusal.detail):
            self.gate.queue_close()
        raise ConnectionGoneError(
            f"websocket closed ({code}): {refusal.detail} ({refusal.reason})", code=code
        )

    async def _end(self, code: int, reason: str, *, by: str) -> None:
        if self.accepted_at is None:  # refused or never accepted: no close handshake to run
            self._teardown_now()
            return
        if self.state is State.OPEN and self.gate.close_nowait(code, reason):
            self._closing(code, reason, by)
        else:
            self.gate.queue_close()  # a shed's close still waiting for a cleanup slot
        # Whoever queued the close (this, a shed, the heartbeat), it must go out before the
        # handler returns: the server drops the TCP connection then (the client sees 1006).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_TIMEOUT
        gate = self.gate
        # The handler has returned: nobody reads the inbox any more. Go on reading the server
        # (dropping what comes) while the close goes out and until the client's reply: a
        # server whose queue for this socket is full cannot process that reply, and uvicorn's
        # legacy server does not even finish writing our close until it has (RFC 6455
        # section 7.1.1: the closing handshake ends with the client's close). A client that
        # floods is exactly the one that gets shed.
        self.inbox.finish({"type": "websocket.disconnect", "code": self.close_code or 1000})
        if not self.finished and not self._reading:
            self._start_pump()
        if not await gate.flush(CLOSE_TIMEOUT):
            # The peer stopped reading and our close sits behind a blocked write. Returning
            # now would let the server close on its own terms (hypercorn: 1011, "internal
            # error"), so the close we chose is handed over without waiting for it.
            await gate.give_up()
        if gate.timed_out and gate.close_code is None:
            gate.hand_over_close(*SEND_TIMED_OUT)
        elif gate.close_written and not self.finished:
            await self._await_close_reply(deadline - loop.time())
        self._teardown_now()

    async def _await_close_reply(self, timeout: float) -> None:
        gone = self._gone
        if gone is None:
            gone = self._gone = asyncio.get_running_loop().create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(gone), max(0.0, timeout))

    def abandon(self) -> None:
        """Give everything back at once (the handshake failed before the app was called)."""
        self._teardown_now()

    def _teardown_now(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            self._pump_task = None
        self.gate.abandon()
        self._finish()
        self.inbox.clear()

    def _opened(self) -> None:
        self.state = State.OPEN
        self.accepted_at = time.monotonic()
        self.hub._opened(self)
        binding = self._binding
        if binding is not None:
            # Right after accept, before any replayed or new message (the gate keeps order).
            # Everything sent to the session until now is in its buffer (hub sends kept it
            # while this socket was connecting): the replay is cut here, with no await before
            # the socket counts as open, so no message falls between the two.
            self._binding = None
            frame, replay = self.hub._session_opened(self, binding)
            self.gate.send_nowait(frame, payload_size(frame))
            for message in replay:
                self.gate.send_nowait(message, payload_size(message))
        # heartbeat_clients="opted_in": only clients that opted in (or ping us themselves, see
        # _inbound) get the text heartbeat; a plain client may not know the text "ping" (one
        # that parses every message as JSON would throw), and the server's protocol keepalive
        # judges it instead.
        if self._heartbeat_on and (
            self.session is not None or self.hub.settings.heartbeat_clients == "all"
        ):
            self._start_beating()
        # Someone must read the socket soon if the app does not go to receive(): the hub looks
        # at it a few milliseconds later (one timer for all sockets, not a callback each).
        self.hub._unattended(self)

    @property
    def beating(self) -> bool:
        """Whether this socket gets the text heartbeat (pings, and 4408 when silent)."""
        return self._beating

    def _start_beating(self) -> None:
        self._beating = True
        now = self.hub.clock_now()
        self.heartbeat.last_seen = now
        self.hub._watch(self, now + self.heartbeat.interval)

    def _closing(self, code: int, reason: str, by: str) -> None:
        if self.close_code is None:
            self.close_code = int(code)
            self.close_reason = reason
            self.closed_by = by
        if self.state is State.OPEN:
            self.state = State.CLOSING

    def _abort(self, code: int, reason: str) -> None:
        """The middleware ends the connection: close frame out next, the app sees the code."""
        if self.shed(code, reason):
            self.gate.queue_close()

    def shed(self, code: int, reason: str, *, by: str = "middleware") -> bool:
        """Stop serving this connection at once; the close frame is queued separately.

        No more frames are taken and the outbox is emptied; the app still gets the messages
        already in its inbox, then the disconnect with ``code``; its user data stops counting.
        Returns ``False`` when the connection was closing already.
        """
        if self.state is State.CONNECTING:
            # Still in its handshake: the app's accept will be turned into a refusal.
            if self._kicked is not None:
                return False
            self._kicked = (code, reason, by)
            return True
        if self.state is not State.OPEN or not self.gate.seal(code, reason, discard=True):
            return False
        self._closing(code, reason, by)
        self.inbox.finish({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._release_memory()
        self._interrupt_reader()
        return True

    def drain_close(self, code: int, reason: str) -> bool:
        """Seal for a drain: frames already handed over still go out, then the close."""
        if self.state is not State.OPEN or not self.gate.seal(code, reason):
            return False
        self._closing(code, reason, "middleware")
        self.inbox.finish({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._interrupt_reader()
        return True

    # -- hub sends and memory ---------------------------------------------------------------

    def deliver(self, frame: Frame) -> Delivery:
        """Queue a hub frame without waiting, applying the slow-consumer policy."""
        gate = self.gate
        session = self.session
        if not gate.open or self.state is not State.OPEN:
            if session is not None and session.connection is self:
                session.keep(frame.message, frame.size)  # for the client's resume
            return Delivery.SKIPPED
        limit = self._max_send_queue
        if limit is not None and gate.queued_bytes + frame.size > limit:
            # A resumable socket is closed, never dropped from: its numbering must hold, and
            # the client gets everything back from the replay buffer when it resumes, this
            # frame included.
            policy = self._slow_policy if session is None else "close"
            if policy == "close":
                if session is not None:
                    session.keep(frame.message, frame.size)
                self.hub._slow_consumer(self, "close", 1)
                self._abort(CloseCode.TRY_AGAIN_LATER, "slow consumer: send queue full")
                return Delivery.CLOSED
            outcome = Delivery.QUEUED
            if policy == "drop_oldest" and frame.size <= limit:
                frames, freed = gate.drop_oldest(gate.queued_bytes + frame.size - limit)
                if frames:
                    self.traffic.messages_out -= frames
                    self.traffic.bytes_out -= freed
                    self._dropped(frames, "drop_oldest")
                    outcome = Delivery.QUEUED_AFTER_DROP
            if gate.queued_bytes + frame.size > limit:
                self._dropped(1, policy)
                return Delivery.DROPPED
        else:
            outcome = Delivery.QUEUED
        if session is not None:
            session.buffer.append(frame.message, frame.size)
        gate.send_nowait(frame.message, frame.size, droppable=True)
        self.traffic.messages_out += 1
        self.traffic.bytes_out += frame.size
        self.hub._grew()
        return outcome

    def _dropped(self, frames: int, policy: str) -> None:
        self.hub._slow_consumer(self, policy, frames)
        self.dropped += frames

    @property
    def memory_used(self) -> int:
        """Bytes of user data, outbox and inbox held for this connection."""
        return self.user_data.bytes + self.gate.queued_bytes + self.inbox.bytes

    def _check_user_data(self, delta: int) -> None:
        check_total(
            self.user_data.bytes,
            delta,
            self.hub.settings.max_memory_per_connection,
            f"user_data of connection {self.connection_id}",
        )

    def _user_data_changed(self, delta: int) -> None:
        if self._accounted:
            self.hub.meter.user_data += delta
            if delta > 0:
                self.hub._grew()

    def _release_memory(self) -> None:
        if self._accounted:
            self._accounted = False
            self.hub.meter.user_data -= self.user_data.bytes

    def _peer_left(self, message: Message) -> None:
        self.gate.mark_gone()
        if self.close_code is None:
            self.close_code = int(message.get("code") or CloseCode.NORMAL)
            self.close_reason = message.get("reason") or ""
            self.closed_by = "client"
        self.inbox.finish(message)
        self._finish()

    def _transport_failed(self, exc: BaseException) -> None:
        self.log.debug("transport_failed", error=type(exc).__name__)
        if self.gate.timed_out:
            # Not the peer's doing as far as the server knows: the middleware ends it (and
            # hands the server this close when the handler returns, see ``_end``).
            self._closing(*SEND_TIMED_OUT, "middleware")
            code, reason = SEND_TIMED_OUT
        else:
            code, reason = 1006, ""
        self._peer_left({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._interrupt_reader()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        previous = self.state
        self.state = State.CLOSED if previous is not State.REFUSED else previous
        self.inbox.finish({"type": "websocket.disconnect", "code": self.close_code or 1006})
        self._release_memory()
        session = self.session
        if session is not None and session.connection is self:
            session.user_data = dict(self.user_data)
            session.groups = set(self.groups)
            self.hub._session_left(session)
        self.hub._finished(self, accepted=self.accepted_at is not None)

    # -- reading: inline by the app, or by the pump ------------------------------------------
    #
    # Someone must always be reading the server's receive(), or pongs and disconnects go unseen
    # (uvicorn stops reading a socket until the app calls receive()). When the app is waiting in
    # receive(), it reads the server itself ("inline"): no task switch per message, and no pump
    # task for a socket whose handler sits in receive(). Whenever a message has been handed to
    # the app and the app is not back in receive() by the next loop turn, the pump task takes
    # over and feeds the bounded inbox, until the app waits on the inbox again. Only one of the
    # two ever awaits the server's receive() at a time (``_reading``).

    def _inbound(self, message: Message) -> int:
        """Process one server message; its payload size if the app should get it, else -1."""
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            heartbeat = self.heartbeat
            bucket = self._bucket
            raw = self._loop_time()
            if self._beating:
                now = self.hub.clock_at(raw)
                if heartbeat.ping_sent_at is not None:
                    # A sign of life after our ping: the next ping is due an interval after it,
                    # not when the ping's timeout would have run out (with timeout > interval,
                    # pings would come every timeout, past a proxy's idle limit).
                    self.hub._watch(self, now + heartbeat.interval)
                if text == self._pong["text"]:
                    rtt = heartbeat.saw_pong(now)
                    if rtt is not None:
                        self.hub.events.rtt(rtt)
                    return -1
                heartbeat.last_seen = now  # HeartbeatState.saw_frame, inlined: once per message
                heartbeat.ping_sent_at = None
            if self._heartbeat_on and text == self._ping["text"]:
                if not self._beating:
                    # A client that pings us speaks the text heartbeat: it gets ours too.
                    self._start_beating()
                # Pings count against the rate limit, a pong is only queued while the outbox
                # has room, and one waiting pong answers every ping behind it: a ping flood
                # from a client that never reads must not grow the outbox unseen.
                if bucket is not None and not bucket.allow(raw):
                    return self._over_rate_limit()
                room = self._max_send_queue
                pong_size = self.hub.pong_size
                if room is None or self.gate.queued_bytes + pong_size <= room:
                    self.gate.send_once(self._pong, pong_size)
                return -1
            if self.close_code is not None:
                return -1  # closing: the app has been told, more data is moot
            if bucket is not None and not bucket.allow(raw):
                return self._over_rate_limit()
            self.last_active = raw
            size = payload_size(message)
            max_size = self._max_size
            if max_size is not None and size > max_size:
                self.hub.events.oversized(self.log, size=size, limit=max_size)
                self._abort(
                    CloseCode.MESSAGE_TOO_BIG,
                    f"message of {size} bytes exceeds limit of {max_size} bytes",
                )
                return -1
            traffic = self.traffic
            traffic.messages_in += 1
            traffic.bytes_in += size
            return size
        if kind == "websocket.disconnect":
            self._peer_left(message)
        return -1

    def _over_rate_limit(self) -> int:
        self.hub._rate_limited(self)
        self._abort(CloseCode.RATE_LIMITED, "rate limit exceeded")
        return -1

    def _interrupt_reader(self) -> None:
        """Wake an app blocked in an inline read, so it gets the disconnect now."""
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task() and not reader.done():
            self._interrupted = True
            reader.cancel()

    def _check_reader(self) -> None:
        if not self._reading and not self.finished:
            self._start_pump()

    def _start_pump(self) -> None:
        # Also while closing (the app has been told): the reads then only drop data, and keep
        # the server's queue moving so that the client's close reply gets through.
        if self._pump_task is None and not self.finished:
            self._reading = True
            self._pump_task = asyncio.get_running_loop().create_task(
                self._pump(), name=f"asgi_ws_stabilizer:pump:{self.connection_id}"
            )

    async def _pump(self) -> None:
        receive = self._receive
        inbox = self.inbox
        heartbeat = self.heartbeat
        try:
            while True:
                message = await receive()
                size = self._inbound(message)
                if size >= 0:
                    app_waits = inbox.awaited()
                    if inbox.full():
                        # The app, not the peer, is slow: stop reading (the server's own flow
                        # control takes over) and do not time the peer out meanwhile.
                        heartbeat.paused = True
                        try:
                            await inbox.put(message, size)
                        finally:
                            heartbeat.paused = False
                            heartbeat.saw_frame(self.hub.clock_now())
                    else:
                        inbox.put_nowait(message, size)
                    if size:
                        self.hub._grew()
                    if INLINE_READS and app_waits and self.close_code is None:
                        return  # the app waits in receive(): it reads inline from here on
                if self.finished and message["type"] == "websocket.disconnect":
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the server's receive failed: the socket is unusable
            self.log.debug("receive_failed", error=type(exc).__name__)
            self._peer_left({"type": "websocket.disconnect", "code": 1006, "reason": ""})
        finally:
            self._reading = False
            self._pump_task = None

    # -- heartbeat hooks (called by the scheduler) ------------------------------------------

    def send_ping(self) -> None:
        """Queue the heartbeat ping."""
        if self.gate.send_nowait(self._ping):
            self.hub.events.ping_sent()

    def heartbeat_expired(self) -> None:
        """No frame came within ``heartbeat_timeout`` of a ping: close 4408."""
        if self.close_code is not None or self.finished:
            return
        self.hub.events.heartbeat_timeout(
            self.log,
            client_id=self.client_id,
            interval=self.heartbeat.interval,
            timeout=self.heartbeat.timeout,
        )
        self._abort(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
        # The peer may never answer our close: stop counting it as connected now.
        self._finish()
