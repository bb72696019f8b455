"""Session binding when the backend keeps the sessions in its broker (hub/sessions.py is the
in-process one).

A socket that opts in is bound by one round trip before the app runs: the broker spends the
token and hands the session over with its replay (or makes a fresh session). From then on the
broker numbers every message of the session (hub sends and the app's own sends alike) and the
bus says which process serves it; this process hands the socket each message in that order,
checking the numbers: one it already has is skipped, a gap (which would make ``missed`` wrong)
closes the socket 1013 so that its client resumes and gets the rest from the log.

User data is stored in the broker when it changes, checked every ``USER_DATA_EVERY`` seconds,
and at once when the socket ends or the process drains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from starlette.types import Message

from ..aio.connection import Connection
from ..aio.outbox import deliver
from ..backends.shared import Attached, Held, SharedSessions
from ..codes import CloseCode
from ..config.settings import StabilizerSettings
from ..core.admission import Handshake
from ..core.ids import new_id
from ..core.messages import Frame
from ..core.registry import Registry
from ..observe.events import Events
from ..observe.log import EventLog
from ..resume.resumption import Plan, Resumption, SharedBinding
from ..resume.sessions import SharedSession
from .sessions import SessionBinder

USER_DATA_EVERY = 1.0
"""Seconds between checks for changed user data (what a killed process can lose at most)."""


class SharedSessionBinder(SessionBinder):
    """Binds opted-in sockets to sessions kept in the broker, and hands them their messages."""

    @property
    def sweep_every(self) -> float:
        """Seconds between checks for changed user data."""
        return USER_DATA_EVERY

    def __init__(
        self,
        resumption: Resumption,
        registry: Registry[Connection],
        log: EventLog,
        events: Events,
        shared: SharedSessions,
        settings: StabilizerSettings,
    ) -> None:
        super().__init__(resumption, registry, log, events)
        self.shared = shared
        self._settings = settings
        self._served: dict[str, Connection] = {}
        """The socket serving each session here, once bound (while a binding is under way,
        ``_early`` keeps what is listed for its session)."""
        self._by_connection: dict[str, str] = {}
        self._early: dict[str, list[tuple[int, Frame]]] = {}
        """Messages for a session whose binding is under way (``_waiting`` of them)."""
        self._waiting: dict[str, int] = {}
        self._saved: dict[str, str] = {}
        """The user data last stored, per session (JSON)."""
        self._unstorable: set[str] = set()
        """Connections whose user data could not be stored (said once each)."""
        shared.host(self)

    async def plan(self, handshake: Handshake) -> Plan | None:
        if not handshake.resuming:
            return None
        claims, reason = self.resumption.check(handshake.token, time.time())
        if claims is None:
            return Plan(reason=reason)
        return await self.shared.peek(claims, handshake.seq or 0)

    async def bind(
        self, connection: Connection, plan: Plan | None, received: int, client_id: str | None
    ) -> None:
        self.warn_random_key()
        binding: SharedBinding | None = None
        early: list[tuple[int, Frame]] = []
        reason = plan.reason if plan is not None else None
        if plan is not None and plan.resumes and plan.claims is not None:
            claims = plan.claims
            self._wait(claims.session_id)
            try:
                result = await self.shared.attach(claims, received, connection.connection_id)
            finally:
                early = self._done(claims.session_id)
            if isinstance(result, str):
                reason = result
                # The broker refused what it accepted a moment ago (another socket was
                # faster): the socket gets nothing of the session, not even its client id.
                self._rename(connection, client_id if client_id is not None else new_id())
            else:
                binding = self._resumed(connection, claims.session_id, result, received)
        if binding is None:
            session_id = connection.own_session_id()
            self._wait(session_id)
            try:
                await self.shared.create(session_id, connection.client_id, connection.connection_id)
            finally:
                early = self._done(session_id)
            binding = SharedBinding(SharedSession(session_id, connection.client_id), reason=reason)
            if reason is not None:
                self._events.resume_refused(connection.log, reason=reason, session_id=session_id)
        session = binding.session
        session.connection_id = connection.connection_id
        connection.session = session
        connection.binding = binding
        self._served[session.session_id] = connection
        self._by_connection[connection.connection_id] = session.session_id
        self._saved[session.session_id] = self._json(connection)
        for seq, frame in early:
            self._take(connection, binding, seq, frame)

    def _resumed(
        self, connection: Connection, session_id: str, result: Attached, received: int
    ) -> SharedBinding:
        """Give ``connection`` the session the broker handed over: its client id, user data
        and groups (fresher from a half-open socket of this process, closed 4409 now)."""
        connection.session_id = session_id
        self._rename(connection, result.client_id)
        binding = SharedBinding(
            SharedSession(session_id, result.client_id),
            resumed=True,
            received=received,
            replaced=result.old_connection or None,
            missed=result.missed,
            seq=result.sent,
            offset=result.offset,
            replay=result.replay,
        )
        old = None
        if result.old_node == self.shared.node and result.old_connection:
            old = self._registry.get(result.old_connection)
        self.take_over(connection, old, result.user_data, result.groups)
        return binding

    def _wait(self, session_id: str) -> None:
        """A binding of ``session_id`` is under way: keep what is listed for it meanwhile."""
        self._waiting[session_id] = self._waiting.get(session_id, 0) + 1
        self._early.setdefault(session_id, [])

    def _done(self, session_id: str) -> list[tuple[int, Frame]]:
        """That binding is over: what was listed for the session meanwhile."""
        early = self._early.get(session_id, [])
        left = self._waiting[session_id] - 1
        if left:
            self._waiting[session_id] = left
            return list(early)
        del self._waiting[session_id]
        del self._early[session_id]
        return early

    def _rename(self, connection: Connection, client_id: str) -> None:
        previous = connection.client_id
        connection.client_id = client_id
        self._registry.rekey(connection, previous)

    # -- messages --------------------------------------------------------------------------

    def deliver(self, frame: Frame, listed: Sequence[tuple[str, int]]) -> None:
        for session_id, seq in listed:
            early = self._early.get(session_id)
            if early is not None:
                early.append((seq, frame))
            connection = self._served.get(session_id)
            if connection is not None and isinstance(connection.binding, SharedBinding):
                self._take(connection, connection.binding, seq, frame)

    def _take(self, connection: Connection, binding: SharedBinding, seq: int, frame: Frame) -> None:
        if seq <= binding.seq:
            return  # in the replay already
        if seq != binding.seq + 1:
            self._log.warning(
                "session_out_of_step",
                session_id=binding.session.session_id,
                expected=binding.seq + 1,
                got=seq,
            )
            connection.abort(CloseCode.TRY_AGAIN_LATER, "session out of step: resume for the rest")
            return
        binding.seq = seq
        if not binding.accepted:
            binding.pending.append(frame.message)
            return
        deliver(connection, frame, self._settings.max_send_queue)

    async def send(self, connection: Connection, message: Message, size: int) -> None:
        """The app's own send: into the session's log, then to the socket from the bus. As in
        one process, it raises ``ConnectionGoneError`` once the socket is closed, and waits
        while the socket's outbox is over half of ``max_send_queue`` (a slow reader slows the
        app's sends instead of overflowing)."""
        session = connection.session
        if session is None:
            return
        gate = connection.gate
        gate.refuse_if_closed()
        limit = self._settings.max_send_queue
        if limit is not None and gate.queued_bytes > limit // 2:
            await gate.flush()
            gate.refuse_if_closed()
        frame = Frame(message, size)
        await self.shared.send(session.session_id, connection.connection_id, frame)

    # -- the broker's view of the sessions served here ---------------------------------------

    def session_of(self, connection_id: str) -> str | None:
        return self._by_connection.get(connection_id)

    def held(self) -> list[Held]:
        held = []
        for session_id, connection in self._served.items():
            binding = connection.binding
            if isinstance(binding, SharedBinding):
                held.append(
                    Held(
                        session_id,
                        connection.client_id,
                        connection.connection_id,
                        binding.seq,
                        binding.offset,
                        self._json(connection),
                        tuple(sorted(connection.groups)),
                    )
                )
        return held

    def served(self) -> int:
        return len(self._served)

    def lost(self, session_ids: Sequence[str]) -> None:
        for session_id in session_ids:
            connection = self._served.get(session_id)
            if connection is not None:
                connection.abort(CloseCode.REPLACED, "the session was resumed on another socket")

    # -- leaving, and user data --------------------------------------------------------------

    def left(self, connection: Connection) -> None:
        session = connection.session
        if session is None:
            return
        self._by_connection.pop(connection.connection_id, None)
        if self._served.get(session.session_id) is connection:
            data = self._json(connection)
            del self._served[session.session_id]
            self._saved.pop(session.session_id, None)
            self.shared.detach(session.session_id, connection.connection_id, data)
        self._unstorable.discard(connection.connection_id)

    def sweep(self) -> None:
        """Store the user data that changed since last time."""
        for session_id, connection in list(self._served.items()):
            self._save(session_id, connection)

    async def save_now(self, connections: list[Connection]) -> None:
        for connection in connections:
            session = connection.session
            if session is not None and self._served.get(session.session_id) is connection:
                self._save(session.session_id, connection)
        await self.shared.written()

    def _save(self, session_id: str, connection: Connection) -> None:
        if not isinstance(connection.binding, SharedBinding):
            return
        data = self._json(connection)
        if self._saved.get(session_id) != data:
            self._saved[session_id] = data
            self.shared.save(session_id, connection.connection_id, data)

    def _json(self, connection: Connection) -> str:
        """The user data as stored: JSON, a value JSON cannot hold as its ``str()``. Data that
        cannot be stored at all (a circular reference) keeps what was stored last, and says so
        once per socket."""
        try:
            return json.dumps(dict(connection.user_data), default=str, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError) as exc:
            if connection.connection_id not in self._unstorable:
                self._unstorable.add(connection.connection_id)
                connection.log.warning("user_data_not_stored", error=str(exc))
            return self._saved.get(connection.session_id, "{}")
