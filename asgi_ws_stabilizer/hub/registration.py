"""Registration: admitting a socket into the registry, and filing it under its client id.

Admission's rules (core/admission.py) decide; this checks a socket against them with the counts
of the registry and registers it, with no ``await`` in between, so concurrent handshakes cannot
overshoot a limit. ``identify`` files a socket under the client id the app established.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Send

from ..aio.connection import Connection
from ..aio.denial import deny
from ..aio.runner import refuse
from ..core.admission import Admission, Handshake, Refusal, check_client_id
from ..core.registry import Registry
from ..observe.events import Events
from ..resume.resumption import Plan
from .sessions import SessionBinder


class Registration:
    """Admits sockets into the registry under the admission rules."""

    def __init__(
        self,
        admission: Admission,
        registry: Registry[Connection],
        sessions: SessionBinder,
        events: Events,
    ) -> None:
        self._admission = admission
        self._registry = registry
        self._sessions = sessions
        self._events = events
        self.admitting = True
        """Whether new connections are admitted (else 503 with ``Retry-After``)."""

    def admit(
        self, connection: Connection, handshake: Handshake, plan: Plan | None = None
    ) -> Refusal | None:
        """Check ``connection`` and register it, with no ``await`` in between.

        It counts under the client id it will actually have (a resumed session's). A socket
        that ``plan`` resumes in place of a half-open one does not count that one: it is
        closed 4409 as this one is admitted.
        """
        total = len(self._registry)
        per_ip = self._registry.count_ip(connection.remote_ip)
        per_client = self._registry.count_client(connection.client_id)
        replaced = None if plan is None else self._sessions.replaced_by(plan)
        if replaced is not None:
            total -= 1
            per_ip -= replaced.remote_ip == connection.remote_ip
            per_client -= replaced.client_id == connection.client_id
        refusal = self._admission.check(
            handshake,
            total=total,
            per_ip=per_ip,
            per_client=per_client,
            draining=not self.admitting,
        )
        if refusal is not None:
            self._events.rejected(
                refusal,
                remote_ip=connection.remote_ip,
                client_id=handshake.client_id,
                origin=handshake.origin,
                path=connection.path,
            )
            return refusal
        self._registry.add(connection)
        return None

    async def refuse_unavailable(
        self, scope: Any, send: Send, handshake: Handshake, detail: str
    ) -> None:
        """Refuse a resumable socket with 503 + ``Retry-After``: the broker that keeps the
        sessions cannot be reached now."""
        refusal = self._admission.backend_unavailable(detail)
        self._events.rejected(
            refusal,
            remote_ip=handshake.remote_ip,
            client_id=handshake.client_id,
            origin=handshake.origin,
            path=scope.get("path"),
        )
        await deny(scope, send, refusal)

    async def identify(self, connection: Connection, client_id: str) -> None:
        """File ``connection`` under the client id the app established (see
        ``ConnectionHandle.identify``)."""
        client_id = check_client_id(client_id)
        previous = connection.client_id
        if client_id == previous:
            return
        limit = self._admission.settings.max_connections_per_client
        if limit is not None and self._registry.count_client(client_id) >= limit:
            refusal = self._admission.client_limit()
            self._events.identify_refused(
                connection.log, refusal, client_id=client_id, previous=previous, limit=limit
            )
            await refuse(connection, refusal)
        connection.client_id = client_id
        self._registry.rekey(connection, previous)
        if connection.session is not None:
            connection.session.client_id = client_id
        connection.log.debug("client_identified", client_id=client_id, previous=previous)
