"""Resumable sessions in Redis (the keys and steps are in redis_session_scripts.py).

Binding a socket is one script awaited before the app runs (a resume also looks first, before
admission, with the same script in its dry mode: the socket counts under the session's client id).
Changes (groups, client id, user data, the client leaving) ride in the writer's queue in order
with the process's sends; hub sends reach the sessions' logs in the bus's own PUBLISH script.
After every reconnect the process writes the sessions it serves again (``restore``): a Redis that
restarted without its data gets them back, numbered from where their sockets are, with what the
new bus sent them meanwhile caught up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import Message

from ..config.settings import StabilizerSettings
from ..core.messages import Frame
from ..errors import BackendUnavailableError
from ..observe.log import EventLog
from ..resume.resumption import Plan
from ..resume.tokens import TokenClaims
from . import redis_session_scripts as lua
from .redis_bus import BUS_LENGTH, message_of, session_args, text
from .shared import Attached, SessionHost, SharedSessions

RESTORE_BATCH = 200
"""Sessions written again per script call after a reconnect."""


class Link(Protocol):
    """What the sessions need of the Redis backend."""

    prefix: str
    node: str

    @property
    def client(self) -> aioredis.Redis | None: ...

    def change(self, *op: str) -> None: ...

    async def send(self, args: list[str | bytes], size: int) -> int | None: ...

    async def written(self) -> None: ...


class RedisSessions(SharedSessions):
    """The sessions of every process that shares the Redis."""

    def __init__(self, link: Link, settings: StabilizerSettings, log: EventLog) -> None:
        self._link = link
        self._log = log
        self.node = link.node
        self.keep_every = settings.session_ttl / 2
        """Seconds between refreshes of the sessions this process serves (at the first presence
        refresh after it is due: up to ``presence_ttl`` / 3 later)."""
        self.held_ms = int((2 * settings.session_ttl + settings.presence_ttl) * 1000)
        """How long a served session lives without its process's refresh: always longer than
        the time between two refreshes, so a live process never loses one; a killed process's
        sessions stay resumable at least 1.5 x ``session_ttl`` after its last refresh."""
        self.away_ms = int(settings.session_ttl * 1000)
        self.limit = settings.resume_buffer_size
        self._host: SessionHost | None = None

    def host(self, host: SessionHost) -> None:
        self._host = host

    def served(self) -> int:
        """How many sessions this process serves now."""
        return self._host.served() if self._host is not None else 0

    def _client(self) -> aioredis.Redis:
        client = self._link.client
        if client is None:
            raise BackendUnavailableError("sessions are unreachable while Redis is")
        return client

    async def _resume(self, claims: TokenClaims, received: int, conn: str, dry: bool) -> Any:
        ttl_ms = max(1, int((claims.expires_at - time.time()) * 1000))
        try:
            return await self._client().eval(
                lua.RESUME, 0, self._link.prefix, claims.session_id, claims.nonce, ttl_ms,
                received, self.node, conn, self.held_ms, "1" if dry else "0", BUS_LENGTH,
            )  # fmt: skip
        except RedisError as exc:
            raise BackendUnavailableError(f"resume failed: {exc}") from exc

    async def peek(self, claims: TokenClaims, received: int) -> Plan:
        reply = [text(x) for x in await self._resume(claims, received, "", dry=True)]
        if reply[0] != "ok":
            return Plan(reason=reply[0])
        replaces = reply[3] if reply[2] == self.node and reply[3] else None
        return Plan(claims=claims, client_id=reply[1], replaces=replaces)

    async def attach(
        self, claims: TokenClaims, received: int, connection_id: str
    ) -> Attached | str:
        reply = await self._resume(claims, received, connection_id, dry=False)
        status = text(reply[0])
        if status != "ok":
            return status
        client_id, user_data, old_node, old_conn = (text(x) for x in reply[1:5])
        sent, missed, offset = (int(x) for x in reply[5:8])
        groups = [g for g in text(reply[8]).split("\n") if g]
        replay = [_message(frame) for frame in reply[9:]]
        try:
            data = json.loads(user_data)
        except ValueError:
            data = {}
        return Attached(
            client_id=client_id,
            user_data=data if isinstance(data, dict) else {},
            groups=groups,
            old_node=old_node,
            old_connection=old_conn,
            sent=sent,
            missed=missed,
            offset=offset,
            replay=replay,
        )

    async def create(self, session_id: str, client_id: str, connection_id: str) -> None:
        try:
            await self._client().eval(
                lua.CREATE, 0, self._link.prefix, session_id, client_id, self.node,
                connection_id, self.held_ms,
            )  # fmt: skip
        except RedisError as exc:
            raise BackendUnavailableError(f"session create failed: {exc}") from exc

    async def send(self, session_id: str, connection_id: str, frame: Frame) -> int | None:
        return await self._link.send(session_args(session_id, connection_id, frame), frame.size)

    def save(self, session_id: str, connection_id: str, user_data: str) -> None:
        self._link.change("sdata", session_id, connection_id, user_data)

    def detach(self, session_id: str, connection_id: str, user_data: str) -> None:
        self._link.change("sdetach", session_id, connection_id, user_data)

    async def written(self) -> None:
        await self._link.written()

    # -- for the backend ----------------------------------------------------------------------

    def presence_changed(self, op: str, connection_id: str, client_id: str, extra: str) -> None:
        """A registry change (the presence op): the session the socket serves changes too."""
        session_id = self._host.session_of(connection_id) if self._host is not None else None
        if session_id is None:
            return
        if op == "join":
            self._link.change("sjoin", session_id, "", extra)
        elif op == "leave":
            self._link.change("sleave", session_id, "", extra)
        elif op == "rename":
            self._link.change("sren", session_id, client_id, extra)

    def deliver(self, frame: Frame, listed: Sequence[tuple[str, int]]) -> None:
        """A bus entry reached sessions this process serves."""
        if self._host is not None:
            self._host.deliver(frame, listed)

    async def restore(self, client: aioredis.Redis) -> dict[int, list[tuple[str, int]]]:
        """Write every session this process serves again (after a (re)connect). Those another
        socket took over meanwhile are closed here. Returns the sends of the bus that reached
        sessions Redis had lost, by entry number, with the numbers they got in their logs
        (the bus reader hands them to the sockets)."""
        held = self._host.held() if self._host is not None else []
        lost: list[str] = []
        late: dict[int, list[tuple[str, int]]] = {}
        made = 0
        for start in range(0, len(held), RESTORE_BATCH):
            args: list[str | int] = []
            for h in held[start : start + RESTORE_BATCH]:
                args += [h.session_id, h.client_id, h.connection_id, h.seq, h.offset]
                args += [h.user_data, "\n".join(h.groups)]
            reply = await client.eval(
                lua.RESTORE, 0, self._link.prefix, self.node, self.held_ms, self.limit, *args
            )
            made += int(reply[0])
            lost += [text(x) for x in reply[1]]
            for item in reply[2]:
                number, session_id, seq = text(item).split(" ")
                late.setdefault(int(number), []).append((session_id, int(seq)))
        if made:
            # Redis lost them (a restart without its data): made again, numbered on from their
            # sockets, with what the new bus had for them meanwhile caught up.
            self._log.warning(
                "sessions_remade", sessions=made, caught_up=sum(len(x) for x in late.values())
            )
        if lost and self._host is not None:
            self._host.lost(lost)
        return late


def _message(frame: object) -> Message:
    """A log entry (a type byte ``t``/``b``, then the payload) as the message it was."""
    data = frame if isinstance(frame, bytes) else str(frame).encode()
    return message_of(data[:1].decode(), data[1:])
