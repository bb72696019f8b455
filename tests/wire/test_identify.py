"""Identity from the app on the wire: ``/ws/{client_id}`` endpoints reached by ``send_to``."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import InvalidStatus

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import serve
from ..timing import t
from .test_heartbeat import wait_count


async def test_path_parameter_identity_is_reached_by_send_to(
    server_kind: str, flavour: str
) -> None:
    """A client identified from a path parameter gets ``send_to`` messages, counts under that
    id, and another socket of the same id over the limit is refused 429 ``client_limit``."""
    hub = Hub(heartbeat_interval=None, max_connections_per_client=1)
    app, _ = build(flavour, hub)
    async with serve(app, server_kind) as url, client(f"{url}/id/user123") as ws:
        await wait_count(hub, 1, t(3))
        assert hub.client_ids() == ["user123"]
        assert await hub.send_to("user123", "hello user123") == 1
        assert await asyncio.wait_for(ws.recv(), t(3)) == "hello user123"
        with pytest.raises(InvalidStatus) as refused:
            async with client(f"{url}/id/user123"):
                pass
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["x-stabilizer-reason"] == "client_limit"
        await ws.send("still here")
        assert await asyncio.wait_for(ws.recv(), t(3)) == "still here"
        assert hub.connection_count == 1


async def test_identity_after_accept_and_over_the_limit(server_kind: str) -> None:
    """An app that learns the id after accept moves the socket to it; a second socket that
    claims an id at its limit is closed 1008 with the reason."""
    hub = Hub(heartbeat_interval=None, max_connections_per_client=1)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url, client(f"{url}/late-id") as ws:
        await ws.send("dora")
        assert await asyncio.wait_for(ws.recv(), t(3)) == "identified"
        assert hub.client_ids() == ["dora"]
        assert await hub.close("dora", 4000, "bye") == 1
        async with client(f"{url}/late-id") as other, client(f"{url}/late-id") as third:
            await other.send("erin")
            assert await asyncio.wait_for(other.recv(), t(3)) == "identified"
            await third.send("erin")
            await asyncio.wait_for(third.wait_closed(), t(3))
            assert third.close_code == 1008
            assert third.close_reason == "too many connections for this client id"
            await wait_count(hub, 1, t(3))  # the refused one has left
            assert hub.client_ids() == ["erin"]
