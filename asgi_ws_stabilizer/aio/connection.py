"""One WebSocket connection: its state, the app's view of the socket, and its close.

Created per socket inside ``StabilizerMiddleware.__call__``; nothing per-connection lives on the
middleware. The app talks to ``receive``/``send`` below instead of the server's:

* before accept, ``receive`` passes straight through to the server;
* from accept on, the reader (aio/reader.py) reads the server, inline or by its pump: it answers
  and hides heartbeat frames, records liveness, enforces the inbound limits and notices a
  disconnect at once;
* every send, the app's and the middleware's own, goes through the gate (aio/gate.py).

When the app returns or raises, the middleware sends the close itself (1000 or 1011): servers
otherwise give 1006, 1011, an empty close or nothing (``reference/asgi-facts.md`` 2.6 and 4).
The app's ``send`` is in aio/sending.py. The connection reaches the hub only through its
``HubPort`` (aio/port.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from types import MappingProxyType
from typing import Any

from starlette.types import Message, Receive, Send

from ..codes import CloseCode
from ..core.heartbeat import HeartbeatState
from ..core.ids import new_id, new_ids
from ..core.memory import NO_USER_DATA, ConnectionData
from ..core.messages import payload_size
from ..core.state import CLOSED, CLOSING, CONNECTING, OPEN, REFUSED, State, allowed
from ..observe.log import EventLog
from ..observe.traffic import Traffic
from ..resume.resumption import Binding
from ..resume.sessions import Session
from .gate import Gate
from .inbox import Inbox
from .inline import INLINE_READS, ended_receive
from .port import HubPort
from .reader import Reader
from .sending import AppSender
from .writer import ended_send

ENDED_SCOPE: Any = MappingProxyType({})  # Connection.scope once it has given everything back
NO_GROUPS: frozenset[str] = frozenset()

# The close of a socket whose write did not finish within ``send_timeout``.
SEND_TIMED_OUT = (int(CloseCode.TRY_AGAIN_LATER), "slow consumer: send timed out")
NO_HEARTBEAT = HeartbeatState(0.0, 0.0, 0.0)  # Connection.heartbeat until it starts beating


async def _ready(message: Message) -> Message:
    return message


class Connection(Reader, AppSender):
    """The middleware's side of one WebSocket."""

    __slots__ = (
        "_burst_mark",
        "_connect_message",
        "_gone",
        "_pending_close",
        "_receive",
        "accepted_at",
        "beating",
        "binding",
        "client_id",
        "close_code",
        "close_reason",
        "closed_by",
        "connection_id",
        "dropped",
        "gate",
        "groups",
        "heartbeat",
        "inbox",
        "path",
        "port",
        "remote_ip",
        "scope",
        "server_send",
        "session",
        "session_id",
        "state",
        "traffic",
        "user_data",
    )

    port: HubPort[Connection]
    """All the connection may ask of the hub."""

    def __init__(
        self,
        port: HubPort[Connection],
        scope: Any,
        receive: Receive,
        send: Send,
        connect_message: Message,
        *,
        client_id: str | None,
        remote_ip: str,
    ) -> None:
        settings = port.settings
        self.port = port
        self.scope = scope
        self._receive = receive
        self.server_send = send
        """The server's ``send``."""
        self._connect_message: Message | None = connect_message
        self.connection_id, generated = new_ids()
        self.session_id = ""  # made when first needed (own_session_id): most never have one
        self.client_id = client_id if client_id is not None else generated
        self.remote_ip = remote_ip
        self.path: str = scope.get("path", "")
        self.state = CONNECTING
        """Where the connection is in its life (core/state.py); only ``_to`` changes it."""
        self.traffic = Traffic()
        self.groups: frozenset[str] = NO_GROUPS  # the registry replaces it on join and leave
        self.dropped = 0
        self._burst_mark = 0  # traffic.messages_in at the last SEND_BURST check (sending.py)
        self.user_data: ConnectionData = NO_USER_DATA  # its own on first use (hub/handle.py)
        self.gate = Gate(send, self, send_timeout=settings.send_timeout, meter=port.meter)
        self.inbox = Inbox(settings.receive_queue_size, port.meter)
        self._start_reader()
        self.heartbeat = NO_HEARTBEAT  # its own from start_beating (about 90 bytes)
        self.beating = False
        """Whether this socket gets the text heartbeat (pings, and 4408 when silent)."""
        self.accepted_at: float | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: str | None = None
        self._gone: asyncio.Future[None] | None = None
        self._pending_close: tuple[int, str, str] | None = None
        """A close asked for while still connecting: the app's accept becomes this refusal."""
        self.session: Session | None = None
        """The resumable session of an opted-in socket (``_stabilizer=1``), else ``None``."""
        self.binding: Binding | None = None
        """How the session was bound, and what the resume did (see hub/sessions.py)."""

    def __repr__(self) -> str:
        return f"<Connection {self.connection_id} client={self.client_id} {self.state.value}>"

    # -- state ------------------------------------------------------------------------------

    def _to(self, new: State) -> bool:
        """Move to ``new`` if that transition is allowed (logged at debug); else nothing."""
        old = self.state
        if not allowed(old, new):
            return False
        self.state = new
        if new is OPEN:
            self._requick()
        else:
            self.quick = False
        log = self.port.log
        if log.debugging:
            log.debug(
                "connection_state", connection_id=self.connection_id, old=old.value, new=new.value
            )
        return True

    def _requick(self) -> None:
        """Work out ``quick`` (reader.py) on the way to ``OPEN``, and when the connect message
        is handed over after it; everything else only turns it off (leaving ``OPEN``,
        ``start_beating``, ``mark_closing``, ``peer_left``)."""
        self.quick = (
            self.state is OPEN
            and INLINE_READS
            and self._connect_message is None
            and not self.beating
            and self._bucket is None
            and self.close_code is None
        )

    @property
    def finished(self) -> bool:
        """Whether the connection has given everything back (``CLOSED``)."""
        return self.state is CLOSED

    @property
    def log(self) -> EventLog:
        """The hub's log with this connection's id on every event."""
        return self.port.log.bind(connection_id=self.connection_id)

    # -- the app's view ---------------------------------------------------------------------

    def receive_other(self) -> Awaitable[Message]:
        """The app's ``receive`` when it is not ``quick`` (reader.py): the awaitable of whoever
        reads now."""
        state = self.state
        message = self._connect_message
        if message is not None:
            self._connect_message = None
            if state is OPEN:  # the app accepted before it read the connect message
                self._requick()
            return _ready(message)
        if state is CONNECTING or state is REFUSED:
            return self._receive()
        return self.read()

    # -- lifecycle ----------------------------------------------------------------------------

    def _opened(self) -> None:
        self._to(OPEN)
        self.accepted_at = time.monotonic()
        # Right after accept, before any new message (the gate keeps order): an opted-in
        # socket's session frame and replay, cut with no await before it counts as open.
        for frame in self.port.opened(self):
            self.gate.send_nowait(frame, payload_size(frame))

    def start_beating(self) -> None:
        """Send this socket the text heartbeat from now on."""
        settings, now = self.port.settings, self.port.clock_now()
        self.beating = True
        self.quick = False
        interval = settings.heartbeat_interval or 0.0
        self.heartbeat = HeartbeatState(interval, settings.heartbeat_timeout, now)
        self.port.watch(self, now + interval)

    def read_since_burst(self) -> bool:
        """Whether the app read data since the last SEND_BURST check (this one counts)."""
        seen = self.traffic.messages_in
        if seen == self._burst_mark:
            return False
        self._burst_mark = seen
        return True

    def own_session_id(self) -> str:
        """The id of this socket's session, made on first use."""
        if not self.session_id:
            self.session_id = new_id()
        return self.session_id

    def watch(self, deadline: float) -> None:
        """Look at the heartbeat again at ``deadline`` (lag-adjusted clock)."""
        self.port.watch(self, deadline)

    # -- closing ----------------------------------------------------------------------------

    def mark_closing(self, code: int, reason: str, by: str) -> None:
        """Record the close (the first one counts) and move ``OPEN`` to ``CLOSING``."""
        if self.close_code is None:
            self.close_code = int(code)
            self.close_reason = reason
            self.closed_by = by
            self.quick = False
        if self.state is OPEN:
            self._to(CLOSING)

    def shed(self, code: int, reason: str, *, by: str = "middleware", discard: bool = True) -> bool:
        """Stop serving this connection at once; the close frame is queued separately.

        No more frames are taken; the outbox is emptied (with ``discard``; a drain keeps what
        was handed over) and its user data stops counting; the app still gets the messages
        already in its inbox, then the disconnect with ``code``. Returns ``False`` when the
        connection was closing already.
        """
        if self.state is CONNECTING:
            # Still in its handshake: the app's accept will be turned into a refusal.
            if self._pending_close is not None:
                return False
            self._pending_close = (code, reason, by)
            return True
        if self.state is not OPEN or not self.gate.seal(code, reason, discard=discard):
            return False
        self.mark_closing(code, reason, by)
        self.inbox.finish({"type": "websocket.disconnect", "code": code, "reason": reason})
        if discard:
            self.user_data.release()
        self.interrupt_read()
        return True

    def abort(self, code: int, reason: str) -> None:
        """The middleware ends the connection: close frame out next, the app sees the code."""
        if self.shed(code, reason):
            self.gate.queue_close()

    def mark_refused(self) -> bool:
        """The handshake is being refused (``CONNECTING`` to ``REFUSED``)."""
        return self._to(REFUSED)

    async def wait_gone(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the peer's side to end (its close reply)."""
        if self.finished:
            return
        loop = asyncio.get_running_loop()
        gone = self._gone = loop.create_future()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(gone), max(0.0, timeout))

    def abandon(self) -> None:
        """Give everything back at once: the handler is done (or never ran)."""
        self.stop_pump()
        self.gate.abandon(final=True)
        self._finish()
        self.inbox.clear()
        # The scope's state holds the app's handle, which holds us; the server's protocol holds
        # the scope, and we held its methods: let go of both (no cycle for the collector).
        self.scope = ENDED_SCOPE
        self.server_send, self._receive = ended_send, ended_receive

    def peer_left(self, message: Message) -> None:
        """The server reported the disconnect in ``message``."""
        self.gate.mark_gone()
        if self.close_code is None:
            self.close_code = int(message.get("code") or CloseCode.NORMAL)
            self.close_reason = message.get("reason") or ""
            self.closed_by = "client"
            self.quick = False
        self.inbox.finish(message)
        self._finish()

    def transport_failed(self, exc: BaseException) -> None:
        """The gate's write failed: the peer is gone (or timed out)."""
        self.log.debug("transport_failed", error=type(exc).__name__)
        if self.gate.timed_out:
            # Not the peer's doing: the middleware ends it (runner.end hands over this close).
            self.mark_closing(*SEND_TIMED_OUT, "middleware")
            code, reason = SEND_TIMED_OUT
        else:
            code, reason = 1006, ""
        self.peer_left({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.interrupt_read()

    def _finish(self) -> None:
        if self.state is CLOSED or not self._to(CLOSED):
            return
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        self.inbox.finish({"type": "websocket.disconnect", "code": self.close_code or 1006})
        self.user_data.release()
        self.port.finished(self)

    @property
    def memory_used(self) -> int:
        """Bytes of user data, outbox and inbox held for this connection."""
        return self.user_data.bytes + self.gate.queued_bytes + self.inbox.bytes

    # -- heartbeat hooks (called by the scheduler) ------------------------------------------

    def send_ping(self) -> None:
        """Queue the heartbeat ping."""
        if self.gate.send_nowait(self.port.texts.ping):
            self.port.events.ping_sent()

    def heartbeat_expired(self) -> None:
        """No frame came within ``heartbeat_timeout`` of a ping: close 4408."""
        if self.close_code is not None or self.finished:
            return
        self.port.events.heartbeat_timeout(
            self.log,
            client_id=self.client_id,
            interval=self.heartbeat.interval,
            timeout=self.heartbeat.timeout,
        )
        self.abort(CloseCode.HEARTBEAT_TIMEOUT, "heartbeat timeout")
        # The peer may never answer our close: stop counting it as connected now.
        self._finish()
