"""``ConnectionHandle``: what the app sees of its connection as ``websocket.state.stabilizer``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codes import CloseCode
from .fanout import BroadcastResult, Exclude, exclusion

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Hub
    from .messages import OutboundMessage


class ConnectionHandle:
    """The app's handle on one WebSocket connection.

    Readable as soon as the handler runs; ``rtt`` fills in after the first heartbeat round trip.
    """

    __slots__ = ("_connection",)

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __repr__(self) -> str:
        c = self._connection
        return (
            f"<ConnectionHandle connection_id={c.connection_id!r} client_id={c.client_id!r} "
            f"state={c.state.value}>"
        )

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
        """Id of the session this socket serves (one session per socket until resumption)."""
        return self._connection.session_id

    @property
    def user_data(self) -> dict[str, Any]:
        """Per-connection data the app may keep; dropped when the connection ends."""
        return self._connection.user_data

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
    def hub(self) -> Hub:
        """The process-wide hub."""
        return self._connection.hub

    @property
    def resumed(self) -> bool:
        """Whether this socket resumed an earlier session (readable once accept() returned)."""
        return self._connection.resumed

    @property
    def replayed(self) -> int:
        """Messages re-sent from the session's buffer on resume."""
        return self._connection.replayed

    @property
    def missed(self) -> int:
        """Messages the client needed that the buffer no longer had (exact)."""
        return self._connection.missed

    @property
    def resume_reason(self) -> str | None:
        """Why a resume was refused (``invalid_token``, ``token_expired``, ``token_spent``,
        ``session_unknown``, ``seq_ahead``); ``None`` when resumed or not asked for."""
        return self._connection.resume_reason

    @property
    def resumable(self) -> bool:
        """Whether the client opted in (``_stabilizer=1``) and has a session."""
        return self._connection.session is not None

    def resume_token(self) -> str:
        """A fresh resume token for this socket's session.

        Raises:
            StateError: the client did not opt in to resumption.
        """
        return self._connection.hub.resume_token(self._connection)

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
        await self._connection.hub.identify(self._connection, client_id)

    async def join(self, group: str) -> bool:
        """Join ``group``; ``False`` when already a member or the socket is gone.

        Raises:
            InvalidGroupError: the name is empty, too long or not a string.
        """
        return await self._connection.hub.join(self._connection, group)

    async def leave(self, group: str) -> bool:
        """Leave ``group``; ``False`` when not a member."""
        return await self._connection.hub.leave(self._connection, group)

    def _exclude(self, exclude: Exclude, exclude_self: bool) -> Exclude:
        if not exclude_self:
            return exclude
        return exclusion(exclude) | {self._connection.connection_id}

    async def broadcast(
        self, message: OutboundMessage, *, exclude_self: bool = False, exclude: Exclude = None
    ) -> BroadcastResult:
        """``hub.broadcast``; with ``exclude_self`` this socket does not get it."""
        return await self._connection.hub.broadcast(
            message, exclude=self._exclude(exclude, exclude_self)
        )

    async def publish(
        self,
        group: str,
        message: OutboundMessage,
        *,
        exclude_self: bool = False,
        exclude: Exclude = None,
    ) -> BroadcastResult:
        """``hub.publish`` to ``group``; with ``exclude_self`` this socket does not get it."""
        return await self._connection.hub.publish(
            group, message, exclude=self._exclude(exclude, exclude_self)
        )

    async def send_to(self, client_id: str, message: OutboundMessage) -> int:
        """``hub.send_to``: every socket of ``client_id``; returns how many took it."""
        return await self._connection.hub.send_to(client_id, message)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket; a second close, or a close after the peer left, does nothing."""
        await self._connection.send({"type": "websocket.close", "code": code, "reason": reason})
