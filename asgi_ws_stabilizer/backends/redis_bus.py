"""The bus's entries: how a hub send is written into one, read back from Redis's replies (RESP2
lists or RESP3 maps), and what this process already wrote.

An entry has four fields (redis_scripts.PUBLISH writes them): ``h``, a JSON header ``[kind,
target, excluded ids, frame type]`` (a close adds its code and reason), ``p``, the payload, and
``n``/``q``, the writing process and its number for the send; and, for each process that serves
a resumable session the send reached, ``o:<node>``: ``"sid seq,sid seq,..."``, the number the
message got in each session's log. Kinds: ``all``, ``group``, ``client`` (hub sends), ``session``
(an app's own send on a resumable socket), ``close`` (``hub.close``) and ``kick`` (close one
socket: its session was resumed on another process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.types import Message

from ..core.delivery import EVERYONE, Target
from ..core.messages import Frame

BUS_LENGTH = 10_000
"""Bus entries Redis keeps (approximately): how far behind a paused process may fall."""
PAGE = 1000
"""Entries read per page when looking back through the bus."""


@dataclass(frozen=True)
class BusEntry:
    """One hub send read from the bus: a frame for ``target``, or a close of a client id."""

    target: Target
    excluded: frozenset[str]
    frame: Frame | None = None
    close: tuple[int, str] | None = None
    """``(code, reason)`` of a ``hub.close`` (``target`` is then the client) or of a kick
    (``target`` is then ``Target("connection", id)``)."""
    listed: tuple[tuple[str, int], ...] = ()
    """The sessions this process serves that the send reached, each with its message's number."""


def send_args(target: Target, frame: Frame, excluded: frozenset[str]) -> list[str | bytes]:
    """The PUBLISH script's arguments for a hub send (after prefix, node, pseq and maxlen)."""
    payload, kind = _payload(frame)
    ids = sorted(excluded)
    header = json.dumps([target.kind, target.name, ids, kind])
    return [target.kind, target.name, "\n".join(ids), header, payload, kind]


def session_args(session_id: str, connection_id: str, frame: Frame) -> list[str | bytes]:
    """The PUBLISH script's arguments for an app's own send on a resumable socket (it goes into
    the session's log, then to the socket, only while ``connection_id`` serves the session)."""
    payload, kind = _payload(frame)
    header = json.dumps(["session", session_id, [], kind])
    return ["session", session_id, connection_id, header, payload, kind]


def _payload(frame: Frame) -> tuple[str | bytes, str]:
    """A frame's payload as written to Redis, and its type: ``t`` (text) or ``b`` (binary)."""
    body = frame.message.get("text")
    if body is not None:
        return body, "t"
    return frame.message.get("bytes") or b"", "b"


def message_of(frame_type: str, payload: bytes) -> Message:
    """The ``websocket.send`` message a payload read back from Redis is (type ``t`` or ``b``)."""
    if frame_type == "t":
        return {"type": "websocket.send", "text": payload.decode()}
    return {"type": "websocket.send", "bytes": payload}


def text(value: object) -> str:
    """A string from a Redis reply (bytes, or already a string)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def close_args(client_id: str, code: int, reason: str) -> list[str | bytes]:
    """The PUBLISH script's arguments for a ``hub.close``."""
    header = json.dumps(["close", client_id, [], "t", code, reason])
    return ["close", client_id, "", header, "", "t"]


def read_entry(fields: dict[bytes, bytes], listing: bytes = b"") -> BusEntry:
    """The hub send an entry's fields hold (``listing``: this process's ``o:<node>`` field)."""
    kind, name, ids, frame_type, *closing = json.loads(fields[b"h"])
    if kind == "close" or kind == "kick":
        target = Target("client" if kind == "close" else "connection", name)
        return BusEntry(target, frozenset(), close=(int(closing[0]), closing[1]))
    payload = fields[b"p"]
    listed: tuple[tuple[str, int], ...] = ()
    mine = fields.get(listing) if listing else None
    if mine:
        pairs = (item.split(" ") for item in mine.decode().split(","))
        listed = tuple((sid, int(seq)) for sid, seq in pairs)
    message = message_of(frame_type, payload)
    if kind not in ("all", "group", "client", "session"):
        raise ValueError(f"bus entry of unknown kind {kind!r}")
    target = EVERYONE if kind == "all" else Target(kind, name)
    return BusEntry(target, frozenset(ids), Frame(message, len(payload)), listed=listed)


def bus_entries(response: object) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The bus entries of an ``XREAD`` reply (RESP2: ``[[stream, entries]]``; RESP3: a dict)."""
    streams = list(response.values()) if isinstance(response, dict) else response or []
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    for stream in streams if isinstance(streams, list) else []:
        entries = stream[1] if isinstance(stream, list | tuple) and len(stream) == 2 else stream
        for entry in entries if isinstance(entries, list) else []:
            entry_id, fields = entry
            if isinstance(entry_id, bytes) and isinstance(fields, dict):
                out.append((entry_id, fields))
    return out


async def last_pseq(client: aioredis.Redis, bus: str, node: str, limit: int) -> int:
    """The pseq of ``node``'s newest entry in the bus (0: none among the newest ``limit``)."""
    end, seen, mine = "+", 0, node.encode()
    while seen < limit:
        reply: object = await client.xrevrange(bus, end, "-", count=PAGE)
        page = reply if isinstance(reply, list) else []
        if not page:
            return 0
        for entry in page:
            fields = entry[1] if isinstance(entry, list | tuple) and len(entry) == 2 else None
            if isinstance(fields, dict) and fields.get(b"n") == mine:
                return int(fields[b"q"])
        seen += len(page)
        last_id = page[-1][0]
        end = "(" + (last_id.decode() if isinstance(last_id, bytes) else str(last_id))
    return 0
