"""Presence across every process that shares the Redis: read by one Lua script over the live
processes (those whose entry in ``nodes`` has not expired), so a process killed without a word
drops out within ``presence_ttl``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import BackendUnavailableError
from . import redis_scripts as lua
from .base import Presence
from .redis_bus import text


class Linked(Protocol):
    """What presence needs of the backend."""

    prefix: str

    @property
    def client(self) -> aioredis.Redis | None: ...


class RedisPresence(Presence):
    """Cluster-wide presence; raises ``BackendUnavailableError`` while Redis is unreachable."""

    def __init__(self, backend: Linked) -> None:
        self._backend = backend

    async def _read(self, what: str, argument: str = "") -> object:
        client = self._backend.client
        if client is None:
            raise BackendUnavailableError("presence is unknown while Redis is unreachable")
        try:
            return await client.eval(lua.READ, 0, self._backend.prefix, what, argument)
        except RedisError as exc:
            raise BackendUnavailableError(f"presence read failed: {exc}") from exc

    async def count(self) -> int:
        return int(str(await self._read("count")))

    async def client_ids(self) -> list[str]:
        return _ids(await self._read("clients"))

    async def group_members(self, group: str) -> list[str]:
        return _ids(await self._read("members", group))

    async def group_size(self, group: str) -> int:
        return int(str(await self._read("size", group)))

    async def is_online(self, client_id: str) -> bool:
        return bool(await self._read("online", client_id))


def _ids(result: object) -> list[str]:
    items = result if isinstance(result, list) else []
    return sorted(text(i) for i in items)


class ChangeFeed:
    """The registry's changes, as presence operations for the writer (``Changes``)."""

    __slots__ = ("_queue",)

    def __init__(self, queue: Callable[..., None]) -> None:
        self._queue = queue

    def added(self, connection_id: str, client_id: str) -> None:
        self._queue("add", connection_id, client_id, "")

    def removed(self, connection_id: str, client_id: str) -> None:
        self._queue("remove", connection_id, client_id, "")

    def joined(self, connection_id: str, client_id: str, group: str) -> None:
        self._queue("join", connection_id, client_id, group)

    def left(self, connection_id: str, client_id: str, group: str) -> None:
        self._queue("leave", connection_id, client_id, group)

    def renamed(self, connection_id: str, old_client_id: str, client_id: str) -> None:
        self._queue("rename", connection_id, old_client_id, client_id)
