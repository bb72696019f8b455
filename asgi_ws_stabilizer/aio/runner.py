"""When the app on one connection ends: closing on its behalf; and refusing a connection.

When the app returns or raises, the middleware sends the close itself (1000, or 1011 after an
error): servers otherwise give 1006, 1011, an empty close or nothing (``reference/asgi-facts.md``
2.6 and 4). It then waits, within ``CLOSE_TIMEOUT``, for the client's close reply, so that the
server does not drop the TCP connection under a close still on its way.
"""

from __future__ import annotations

import asyncio
from typing import NoReturn

from starlette.websockets import WebSocketDisconnect

from ..codes import CLOSE_TIMEOUT, CloseCode
from ..core.admission import Refusal
from ..core.state import State
from ..errors import ConnectionGoneError
from .connection import SEND_TIMED_OUT, Connection
from .denial import deny


async def app_raised(connection: Connection, exc: BaseException) -> bool:
    """The app running on ``connection`` raised ``exc``: close on its behalf; whether ``exc``
    is to be raised on (everything but the peer's departure).

    The app itself runs in ``StabilizerMiddleware.__call__``, with no coroutine of ours
    between the two (a frame less for every open socket): it calls this when the app raised,
    and ``end`` when it returned.
    """
    if isinstance(exc, asyncio.CancelledError):
        connection.abandon()
        return True
    if _is_departure(connection, exc):
        await end(connection, CloseCode.NORMAL, "", by="middleware")
        return False
    if connection.state is State.CONNECTING or connection.state is State.REFUSED:
        connection.abandon()
        return True
    connection.port.events.app_error(
        connection.log, exc, client_id=connection.client_id, path=connection.path
    )
    await end(connection, CloseCode.INTERNAL_ERROR, "internal error", by="middleware")
    return True


def _is_departure(connection: Connection, exc: BaseException) -> bool:
    """A disconnect seen by the app, not an app error: log nothing, re-raise nothing."""
    if isinstance(exc, WebSocketDisconnect | ConnectionGoneError):
        return True
    gate = connection.gate
    gone = gate.gone or gate.close_code is not None
    return gone and isinstance(exc, OSError | RuntimeError)


async def end(connection: Connection, code: int, reason: str, *, by: str) -> None:
    """The handler returned or raised: send the close and wait for the client's reply."""
    gate = connection.gate
    if connection.accepted_at is None or (
        # The peer left and everything is given back (the usual end): no close to send or
        # wait for, nothing in flight.
        connection.finished and gate.gone and not gate.timed_out and gate.writer is None
    ):
        connection.abandon()  # refused or never accepted: no close handshake to run either
        return
    if connection.state is State.OPEN and gate.close_nowait(code, reason):
        connection.mark_closing(code, reason, by)
    else:
        gate.queue_close()  # a shed's close still waiting for a cleanup slot
    # Whoever queued the close (this, a shed, the heartbeat), it must go out before the
    # handler returns: the server drops the TCP connection then (the client sees 1006).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_TIMEOUT
    # Nobody reads the inbox any more. Go on reading the server (dropping what comes) while
    # the close goes out and until the client's reply: a server whose queue for this socket
    # is full cannot process that reply, and uvicorn's legacy server does not even finish
    # writing our close until it has (RFC 6455 section 7.1.1: the closing handshake ends with
    # the client's close). A client that floods is exactly the one that gets shed.
    connection.inbox.finish({"type": "websocket.disconnect", "code": connection.close_code or 1000})
    if not connection.finished and not connection.reading:
        connection.start_pump()
    if not await gate.flush(CLOSE_TIMEOUT):
        # The peer stopped reading and our close sits behind a blocked write. Returning now
        # would let the server close on its own terms (hypercorn: 1011, "internal error"), so
        # the close we chose is handed over without waiting for it.
        await gate.give_up()
    if gate.timed_out and gate.close_code is None:
        gate.hand_over_close(*SEND_TIMED_OUT)
    elif gate.close_written:
        await connection.wait_gone(deadline - loop.time())
    connection.abandon()


async def refuse(connection: Connection, refusal: Refusal) -> NoReturn:
    """End ``connection`` because of ``refusal``, and raise ``ConnectionGoneError``.

    Before accept the handshake is refused as admission would (the HTTP status and
    ``x-stabilizer-reason`` where the server has the denial extension, else 403); after it,
    the socket is closed 1008 (policy violation) with the refusal's detail.
    """
    if connection.state is State.CONNECTING:
        connection.mark_refused()
        await deny(connection.scope, connection.server_send, refusal)
        raise ConnectionGoneError(
            f"websocket refused before accept: {refusal.detail} ({refusal.reason})"
        )
    code = int(CloseCode.POLICY_VIOLATION)
    connection.abort(code, refusal.detail)
    raise ConnectionGoneError(
        f"websocket closed ({code}): {refusal.detail} ({refusal.reason})", code=code
    )
