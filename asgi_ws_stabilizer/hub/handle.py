"""What the app sees of its connection as ``websocket.state.stabilizer``.

``ConnectionView`` is everything of the handle but its ``hub``; ``ConnectionHandle``
(hub/hub.py) adds that, so that this module need not import the hub.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..aio.connection import Connection
from ..codes import CloseCode
from ..core.delivery import BroadcastResult, Exclude, exclusion
from ..core.memory import NO_USER_DATA, ConnectionData
from ..core.messages import OutboundMessage


def user_data_of(connection: Connection) -> ConnectionData:
    """``connection``'s user data, made on first use (until then it is the shared, empty
    ``NO_USER_DATA``). Made once a close is under way or the connection has ended, it is not
    accounted: the connection's share of the total is given back (or was) without it."""
    data = connection.user_data
    if data is NO_USER_DATA:
        port = connection.port
        limit = port.settings.max_memory_per_connection
        data = ConnectionData(port.meter, limit, port.grew, connection.connection_id)
        data.accounted = connection.close_code is None and not connection.finished
        connection.user_data = data
    return data


class HubActions(Protocol):
    """What a handle asks of its hub (the ``Hub`` has all of it)."""

    async def identify(self, connection: Connection, client_id: str) -> None: ...
    async def join(self, connection: Connection, group: str) -> bool: ...
    async def leave(self, connection: Connection, group: str) -> bool: ...
    def resume_token(self, connection: Connection) -> str: ...
    async def broadcast(
        self, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult: ...
    async def publish(
        self, group: str, message: OutboundMessage, *, exclude: Exclude = None
    ) -> BroadcastResult: ...
    async def send_to(self, client_id: str, message: OutboundMessage) -> int: ...


class ConnectionView:
    """The app's handle on one WebSocket connection, but its ``hub``.

    Readable as soon as the handler runs; ``rtt`` fills in after the first heartbeat round trip.
    Two handles of the same connection are equal.
    """

    __slots__ = ("_actions", "_connection")

    def __init__(self, connection: Connection, actions: HubActions) -> None:
        self._connection = connection
        self._actions = actions

    def __repr__(self) -> str:
        c = self._connection
        return (
            f"<ConnectionHandle connection_id={c.connection_id!r} client_id={c.client_id!r} "
            f"state={c.state.value}>"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnectionView):
            return NotImplemented
        return other.connection_id == self._connection.connection_id

    def __hash__(self) -> int:
        return hash(self._connection.connection_id)

    @property
    def connection_id(self) -> str:
        """Unique id of this socket."""
        return self._connection.connection_id

    @property
    def client_id(self) -> str:
        """Who the client is: the id ``identify()`` set, else the ``client_id_param`` query
        parameter, else a generated one (a resumed session brings its own back)."""
        return self._connection.client_id

    @property
    def session_id(self) -> str:
        """Id of this socket's session: its own, or the one it resumed (``_stabilizer=1``)."""
        return self._connection.own_session_id()

    @property
    def user_data(self) -> dict[str, Any]:
        """Per-connection data the app may keep; dropped when the connection ends."""
        return user_data_of(self._connection)

    @property
    def rtt(self) -> float | None:
        """Last heartbeat round-trip time in seconds, ``None`` before the first pong."""
        return self._connection.heartbeat.rtt

    @property
    def remote_ip(self) -> str:
        """The peer's address as the server reports it (see the README on proxies)."""
        return self._connection.remote_ip

    @property
    def state(self) -> str:
        """``connecting``, ``open``, ``closing``, ``closed`` or ``refused``."""
        return self._connection.state.value

    @property
    def close_code(self) -> int | None:
        """The code the connection closed (or is closing) with, once known."""
        return self._connection.close_code

    @property
    def resumed(self) -> bool:
        """Whether this socket resumed an earlier session (readable once accept() returned)."""
        binding = self._connection.binding
        return binding.resumed if binding is not None and binding.accepted else False

    @property
    def replayed(self) -> int:
        """Messages re-sent from the session's buffer on resume."""
        binding = self._connection.binding
        return binding.replayed if binding is not None and binding.accepted else 0

    @property
    def missed(self) -> int:
        """Messages the client needed that the buffer no longer had (exact)."""
        binding = self._connection.binding
        return binding.missed if binding is not None and binding.accepted else 0

    @property
    def resume_reason(self) -> str | None:
        """Why a resume was refused (``invalid_token``, ``token_expired``, ``token_spent``,
        ``session_unknown``, ``seq_ahead``); ``None`` when resumed or not asked for."""
        binding = self._connection.binding
        return binding.reason if binding is not None and binding.accepted else None

    @property
    def resumable(self) -> bool:
        """Whether the client opted in (``_stabilizer=1``) and has a session."""
        return self._connection.session is not None

    def resume_token(self) -> str:
        """A fresh resume token for this socket's session.

        Raises:
            StateError: the client did not opt in to resumption.
        """
        return self._actions.resume_token(self._connection)

    @property
    def groups(self) -> frozenset[str]:
        """The groups this socket is in."""
        return frozenset(self._connection.groups)

    @property
    def dropped(self) -> int:
        """Hub messages dropped for this socket under a drop policy."""
        return self._connection.dropped

    @property
    def memory_used(self) -> int:
        """Bytes of user data, outbox and inbox held for this socket."""
        return self._connection.memory_used

    async def identify(self, client_id: str) -> None:
        """Tell the middleware who the client is, once your app has authenticated it.

        Call it with the id your app established (a path parameter, a JWT's subject, the user
        of a session), before or after ``accept()``. From then on the socket counts under that
        id for ``hub.send_to``, ``hub.close``, ``group_members``, ``client_ids`` and
        ``max_connections_per_client``, and its resumable session carries it. The
        ``client_id`` query parameter (``client_id_param``) is the zero-code default, but
        anyone can set it: for identity that matters, authenticate, then identify.

        Raises:
            InvalidClientIdError: ``client_id`` is not 1-128 characters of
                ``A-Z a-z 0-9 . _ ~ : @ -``; nothing changed.
            ConnectionGoneError: that id already has ``max_connections_per_client`` sockets:
                before accept, the handshake was refused (HTTP 429, ``client_limit``); after
                it, the socket was closed 1008. Let it end your handler.
        """
        await self._actions.identify(self._connection, client_id)

    async def join(self, group: str) -> bool:
        """Join ``group``; ``False`` when already a member or the socket is gone.

        Raises:
            InvalidGroupError: the name is empty, too long or not a string.
        """
        return await self._actions.join(self._connection, group)

    async def leave(self, group: str) -> bool:
        """Leave ``group``; ``False`` when not a member."""
        return await self._actions.leave(self._connection, group)

    def _exclude(self, exclude: Exclude, exclude_self: bool) -> Exclude:
        if not exclude_self:
            return exclude
        return exclusion(exclude) | {self._connection.connection_id}

    async def broadcast(
        self, message: OutboundMessage, *, exclude_self: bool = False, exclude: Exclude = None
    ) -> BroadcastResult:
        """``hub.broadcast``; with ``exclude_self`` this socket does not get it."""
        return await self._actions.broadcast(message, exclude=self._exclude(exclude, exclude_self))

    async def publish(
        self,
        group: str,
        message: OutboundMessage,
        *,
        exclude_self: bool = False,
        exclude: Exclude = None,
    ) -> BroadcastResult:
        """``hub.publish`` to ``group``; with ``exclude_self`` this socket does not get it."""
        return await self._actions.publish(
            group, message, exclude=self._exclude(exclude, exclude_self)
        )

    async def send_to(self, client_id: str, message: OutboundMessage) -> int:
        """``hub.send_to``: every socket of ``client_id``; returns how many took it."""
        return await self._actions.send_to(client_id, message)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket; a second close, or a close after the peer left, does nothing."""
        await self._connection.send({"type": "websocket.close", "code": code, "reason": reason})
