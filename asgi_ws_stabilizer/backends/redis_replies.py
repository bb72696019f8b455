"""Reading the bus: its replies (RESP2 lists or RESP3 maps), and what this process already wrote."""

from __future__ import annotations

import redis.asyncio as aioredis

PAGE = 1000
"""Entries read per page when looking back through the bus."""


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
