"""``ConnectionHandle``: what the app sees of its connection as ``websocket.state.stabilizer``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .codes import CloseCode

if TYPE_CHECKING:
    from .connection import Connection
    from .hub import Hub


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
        """The client id from the ``client_id_param`` query parameter, or a generated one."""
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

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close the socket; a second close, or a close after the peer left, does nothing."""
        await self._connection.send({"type": "websocket.close", "code": code, "reason": reason})
