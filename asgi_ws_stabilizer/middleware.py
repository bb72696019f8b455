"""``StabilizerMiddleware``: the pure ASGI middleware that turns everything on.

::

    app.add_middleware(StabilizerMiddleware)                 # settings from WS_STABILIZER_*
    app.add_middleware(StabilizerMiddleware, heartbeat_interval=5)
    app.add_middleware(StabilizerMiddleware, hub=hub)        # a Hub you built yourself
    app = StabilizerMiddleware(any_asgi_app)

``http`` scopes pass straight through with the hub in ``scope["state"]["stabilizer"]``;
``lifespan`` starts and stops the hub's services; each ``websocket`` scope is admitted (or
refused before the app is called) and then served by a ``Connection``.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Send

from .aio.connection import Connection
from .aio.denial import deny
from .aio.runner import app_raised, end
from .codes import CloseCode
from .config.settings import SettingsOverrides, Unpack
from .core.admission import Handshake
from .errors import BackendUnavailableError, SettingsError
from .hub.hub import ConnectHook, DisconnectHook, Hub
from .observe.log import EventLog

STATE_KEY = "stabilizer"
"""Key in ``scope["state"]``: the connection's handle on websocket scopes, the hub on others."""


class StabilizerMiddleware:
    """WebSocket stabilization for any ASGI app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hub: Hub | None = None,
        on_connect: ConnectHook | None = None,
        on_disconnect: DisconnectHook | None = None,
        **settings: Unpack[SettingsOverrides],
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI app.
            hub: a hub built beforehand, to reach it from elsewhere; its settings apply.
            on_connect: ``on_connect(handle)``, sync or async, right after each accept.
            on_disconnect: ``on_disconnect(handle, code, reason, closed_by)`` when one ends.
            **settings: ``StabilizerSettings`` fields, overriding ``WS_STABILIZER_*`` variables.

        A bad setting does not raise here, because Starlette builds middleware lazily inside
        its first call, where servers in lifespan "auto" mode would swallow the error. It is
        reported as ``lifespan.startup.failed`` instead, which makes the server exit, and
        raised on any other scope.
        """
        self.app: ASGIApp = app
        self._built: Hub | SettingsError
        try:
            extra = [
                *settings,
                *(["on_connect"] if on_connect else []),
                *(["on_disconnect"] if on_disconnect else []),
            ]
            if hub is not None and extra:
                raise SettingsError(
                    [
                        (name, "keyword argument", "pass it to Hub(...) when you pass hub=")
                        for name in extra
                    ]
                )
            self._built = (
                hub
                if hub is not None
                else Hub(on_connect=on_connect, on_disconnect=on_disconnect, **settings)
            )
        except SettingsError as exc:
            self._built = exc
            EventLog().error("settings_invalid", error=str(exc))

    @property
    def error(self) -> SettingsError | None:
        """What was wrong with the settings, or ``None``."""
        built = self._built
        return built if isinstance(built, SettingsError) else None

    @property
    def hub(self) -> Hub:
        """The hub; raises the settings error if the settings were bad."""
        built = self._built
        if isinstance(built, SettingsError):
            raise built
        return built

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        hub = self._built
        if isinstance(hub, SettingsError):
            await _refuse_to_start(hub, scope, receive, send)
            return
        if kind == "websocket":
            # Admitted in a coroutine of its own that has returned before the app runs: its
            # locals (the handshake, the connect message) are not kept for the socket's life.
            # The app runs right here: no coroutine frame of ours between it and this one.
            connection = await self._admit(hub, scope, receive, send)
            if connection is None:
                return
            try:
                await self.app(connection.scope, connection.receive, connection.send)
            except BaseException as exc:
                if await app_raised(connection, exc):
                    raise
            else:
                await end(connection, CloseCode.NORMAL, "", by="middleware")
        elif kind == "lifespan":
            await self._lifespan(hub, scope, receive, send)
        else:
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            state[STATE_KEY] = hub
            await self.app(scope, receive, send)

    async def _admit(self, hub: Hub, scope: Any, receive: Receive, send: Send) -> Connection | None:
        """The handshake's connection, admitted and registered; ``None`` when it was refused
        (or the peer left first)."""
        hub.ensure_started()
        first: Any = await receive()
        if first["type"] != "websocket.connect":
            return None  # the peer left before the handshake got to us
        handshake = Handshake.from_scope(scope, hub.settings.client_id_param)
        # A token that resumes names the client; one that does not confers nothing of the
        # session it names. Decided before admission, so that the socket is counted under the
        # identity it will actually have, and carried out right after it (in one process with
        # no await between; with a broker, the broker decides again when it is carried out).
        try:
            plan = await hub.sessions.plan(handshake) if handshake.resuming else None
        except BackendUnavailableError as exc:
            await hub.registration.refuse_unavailable(scope, send, handshake, str(exc))
            return None
        connection = Connection(
            hub.services,
            scope,
            receive,
            send,
            first,
            client_id=plan.client_id
            if plan is not None and plan.resumes and plan.client_id is not None
            else handshake.client_id,
            remote_ip=handshake.remote_ip,
        )
        refusal = hub.registration.admit(connection, handshake, plan)
        if refusal is not None:
            await deny(scope, send, refusal)
            return None
        try:
            if handshake.opted_in:
                await hub.sessions.bind(connection, plan, handshake.seq or 0, handshake.client_id)
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            state[STATE_KEY] = hub.handle(connection)
        except BackendUnavailableError as exc:
            connection.abandon()
            await hub.registration.refuse_unavailable(scope, send, handshake, str(exc))
            return None
        except BaseException:
            connection.abandon()  # whatever failed, the registry slot is given back
            raise
        return connection

    async def _lifespan(self, hub: Hub, scope: Any, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        if state is not None:
            state[STATE_KEY] = hub

        async def lifespan_receive() -> Any:
            message: Any = await receive()
            if message["type"] == "lifespan.startup":
                await hub.start()
            return message

        async def lifespan_send(message: Any) -> None:
            await send(message)
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await hub.stop()

        await self.app(scope, lifespan_receive, lifespan_send)


async def _refuse_to_start(error: SettingsError, scope: Any, receive: Receive, send: Send) -> None:
    """Report bad settings: ``lifespan.startup.failed`` (the server exits), else raise."""
    if scope["type"] != "lifespan":
        raise error
    message: Any = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": str(error)})
