"""Session binding: the hub's side of resumption (the deciding parts are in resume/).

A socket that opts in (``_stabilizer=1``) is bound to a session right after admission: the one
its token resumes, or a fresh one. When it is accepted it gets its session frame and the replay;
when it ends, its session keeps its groups, user data and every message sent to it until the
client resumes or ``session_ttl`` passes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starlette.types import Message

from ..aio.connection import Connection
from ..codes import CloseCode
from ..core.admission import Handshake
from ..core.registry import Registry
from ..errors import StateError
from ..observe.events import Events
from ..observe.log import EventLog
from ..resume.resumption import Plan, Resumption, control_frame
from .handle import user_data_of


class SessionBinder:
    """Binds opted-in sockets to sessions, and keeps the sessions of sockets that ended."""

    def __init__(
        self,
        resumption: Resumption,
        registry: Registry[Connection],
        log: EventLog,
        events: Events,
    ) -> None:
        self.resumption = resumption
        self._events = events
        self.store = resumption.store
        self._registry = registry
        self._log = log
        self._warned_random_key = False

    @property
    def sweep_every(self) -> float:
        """Seconds between ``sweep`` calls: half the ``session_ttl``, at most 30."""
        return min(30.0, self.store.ttl / 2)

    async def plan(self, handshake: Handshake) -> Plan | None:
        """What the handshake's resume request would do (nothing is changed yet). Here it
        never waits, so nothing happens between it, admission and ``bind``.

        ``None`` when the socket does not ask to resume (not opted in, or no usable token and
        seq: admission refuses a malformed seq).
        """
        if not handshake.resuming:
            return None
        return self.resumption.plan(handshake.token, handshake.seq or 0, time.time())

    def replaced_by(self, plan: Plan | None) -> Connection | None:
        """The registered socket that ``plan`` resumes in place of (a half-open one)."""
        if plan is None or plan.replaces is None:
            return None
        return self._registry.get(plan.replaces)

    def warn_random_key(self) -> None:
        """Say once that tokens are signed with a random per-process key."""
        if self.resumption.random_key and not self._warned_random_key:
            self._warned_random_key = True
            self._log.warning(
                "resume_key_random",
                hint="set WS_STABILIZER_SECRET_KEY: tokens made with a random per-process key "
                "do not survive a restart and do not work across workers",
            )

    async def bind(
        self, connection: Connection, plan: Plan | None, received: int, client_id: str | None
    ) -> None:
        """Give an opted-in socket its session: the one ``plan`` resumes, or a fresh one
        (``client_id``: the handshake's, for a fresh one). Here it never waits."""
        now = time.time()
        self.warn_random_key()
        old = self.replaced_by(plan)
        binding = self.resumption.bind(
            plan or Plan(), connection.own_session_id(), connection.client_id, received, now
        )
        session = binding.session
        connection.session = session
        connection.session_id = session.session_id
        connection.binding = binding
        if binding.resumed:
            # The socket was made with the session's client id (plan, before admission).
            user_data, groups = self.take_over(connection, old, session.user_data, session.groups)
            session.user_data, session.groups = dict(user_data), set(groups)
        elif binding.reason is not None:
            self._events.resume_refused(
                connection.log, reason=binding.reason, session_id=session.session_id
            )
        # From here until accept, hub sends to the session wait in its buffer (the socket is
        # not open yet); the replay is cut at accept.
        self.store.attach(session, connection.connection_id)

    def take_over(
        self,
        connection: Connection,
        old: Connection | None,
        user_data: dict[str, Any],
        groups: Iterable[str],
    ) -> tuple[dict[str, Any], Iterable[str]]:
        """Give ``connection`` a resumed session's user data and groups. A half-open ``old``
        socket of this process that served the session (its client is here again) hands over
        its own, fresher ones and is closed 4409: it gets nothing more. Returns what was given."""
        if old is not None and old is not connection:
            user_data, groups = dict(old.user_data), set(old.groups)
            old.abort(CloseCode.REPLACED, "replaced by a newer connection of the same session")
        user_data_of(connection).restore(user_data)
        for group in groups:
            self._registry.join(connection, group)
        return user_data, groups

    def opened(self, connection: Connection) -> list[Message]:
        """The session frame and the replay (cut now) for an opted-in socket just accepted."""
        binding = connection.binding
        if binding is None or binding.accepted:
            return []
        replay = binding.replay_at_accept()
        missed = binding.missed
        session = binding.session
        if binding.resumed:
            self._events.resumed(
                connection.log,
                session_id=session.session_id,
                client_id=session.client_id,
                replayed=len(replay),
                missed=missed,
                replaced=binding.replaced is not None,
            )
        frame = control_frame(
            "session",
            session_id=session.session_id,
            token=self.resumption.token(session, time.time()),
            resumed=binding.resumed,
            replayed=len(replay),
            missed=missed,
        )
        return [frame, *replay]

    def left(self, connection: Connection) -> None:
        """``connection`` ended: if it still served its session, the session keeps what it had
        until its client resumes."""
        session = connection.session
        if session is not None and session.connection_id == connection.connection_id:
            session.user_data = dict(connection.user_data)
            session.groups = set(connection.groups)
            self.store.detach(session, time.time())

    async def send(self, connection: Connection, message: Message, size: int) -> None:
        """The app's own send on a socket whose session the broker keeps (not here)."""
        raise StateError("this process keeps its sessions itself")

    async def save_now(self, connections: list[Connection]) -> None:
        """Store these sockets' session state where a resume elsewhere finds it (here there
        is nothing to do: sessions do not leave the process)."""

    def token(self, connection: Connection) -> str:
        """A fresh resume token for an opted-in connection's session."""
        if connection.session is None:
            raise StateError("this socket did not opt in to resumption (_stabilizer=1)")
        return self.resumption.token(connection.session, time.time())

    def sweep(self) -> None:
        """Forget the sessions whose client did not come back in time."""
        expired = self.store.expire(time.time())
        if expired:
            self._log.debug("sessions_expired", count=expired)
