"""Heartbeat on the wire: pings, hidden pongs, 4408 on silence, send-only handlers."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from structlog.testing import capture_logs
from websockets.exceptions import ConnectionClosed

from asgi_ws_stabilizer import CloseCode, Hub

from ..apps import build
from ..conftest import client, recv_until
from ..servers import UVICORN_KINDS, CutProxy, serve
from ..timing import t

INTERVAL = t(0.2)
TIMEOUT = t(0.2)
MARGIN = t(0.35)


def fast_hub() -> Hub:
    """A fast text heartbeat for every client (these tests use plain clients)."""
    return Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT, heartbeat_clients="all")


async def wait_count(hub: Hub, count: int, within: float) -> None:
    """Wait until the hub counts ``count`` connections, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while hub.connection_count != count:
        assert loop.time() < deadline, f"hub still counts {hub.connection_count}, not {count}"
        await asyncio.sleep(0.01)


async def test_idle_client_gets_ping_and_pong_keeps_it_alive(
    server_kind: str, flavour: str
) -> None:
    """An idle client is pinged; answering pong keeps it open for 10+ intervals; pong is hidden."""
    hub = fast_hub()
    app, rec = build(flavour, hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        loop = asyncio.get_running_loop()
        start = loop.time()
        pings = 0
        while loop.time() - start < 10.5 * INTERVAL:
            frame = await asyncio.wait_for(ws.recv(), INTERVAL + TIMEOUT + MARGIN)
            assert frame == "ping"
            pings += 1
            await ws.send("pong")
        await ws.send("data")
        assert await asyncio.wait_for(ws.recv(), 2) == "ok"
        assert hub.connection_count == 1
    assert pings >= 8
    assert rec.received == ["data"]  # the app saw the data, never a pong
    await wait_count(hub, 0, 2)
    assert hub.stats()["rtt"]["samples"] >= 8


async def test_silent_client_closed_4408_in_time(server_kind: str, flavour: str) -> None:
    """A client that stops answering is closed 4408 within interval + timeout + margin."""
    hub = fast_hub()
    app, _ = build(flavour, hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await asyncio.wait_for(ws.recv(), INTERVAL + MARGIN) == "ping"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), INTERVAL + TIMEOUT + MARGIN)
        elapsed = loop.time() - start
        assert ws.close_code == CloseCode.HEARTBEAT_TIMEOUT
        assert ws.close_reason == "heartbeat timeout"
        assert elapsed <= INTERVAL + TIMEOUT + MARGIN
        await wait_count(hub, 0, 2)
    assert hub.stats()["heartbeat_timeouts"] == 1
    assert hub.stats()["closes"] == {"4408": 1}


async def test_client_ping_answered_and_hidden(server_kind: str) -> None:
    """A client's own ping gets pong back and never reaches the app."""
    hub = fast_hub()
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        await ws.send("ping")
        frames = await recv_until(ws, "pong", 2)
        assert frames[-1] == "pong"
        await ws.send("after")
        await recv_until(ws, "ok", 2)
    assert rec.received == ["after"]


async def test_any_inbound_frame_counts_as_life(server_kind: str) -> None:
    """A client that keeps sending data but never answers ping is not timed out."""
    hub = fast_hub()
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 5 * (INTERVAL + TIMEOUT):
            await ws.send("data")
            await asyncio.sleep(INTERVAL / 2)
        assert hub.connection_count == 1
    assert len(rec.received) >= 10


async def test_send_only_handler(server_kind: str, flavour: str) -> None:
    """A handler that never receives still gets pongs processed and ends when the peer leaves."""
    hub = fast_hub()
    app, rec = build(flavour, hub)
    async with serve(app, server_kind) as url:
        async with client(url + "/sendonly") as ws:
            loop = asyncio.get_running_loop()
            start = loop.time()
            ticks = pings = 0
            while loop.time() - start < 10 * INTERVAL:
                frame = await asyncio.wait_for(ws.recv(), INTERVAL + TIMEOUT)
                if frame == "ping":
                    pings += 1
                    await ws.send("pong")
                else:
                    ticks += 1
            assert hub.connection_count == 1
            assert pings >= 5
            assert ticks > 0
            assert hub.stats()["heartbeat_timeouts"] == 0
        await wait_count(hub, 0, t(0.5))
        await asyncio.wait_for(rec.send_loop_ended.wait(), t(1))
    # The loop ended because its next send raised (Starlette turns our OSError into this).
    assert rec.send_loop_error == ["WebSocketDisconnect"]
    assert hub.stats()["rtt"]["samples"] >= 5


async def test_without_lifespan_services_start_on_first_connection() -> None:
    """With uvicorn's lifespan off, the heartbeat still runs (started by the first socket)."""
    import uvicorn

    from ..servers import free_port, wait_for_port

    hub = fast_hub()
    app, _ = build("starlette", hub)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_for_port(port)
        assert not hub.running
        async with client(f"ws://127.0.0.1:{port}/record") as ws:
            assert await asyncio.wait_for(ws.recv(), INTERVAL + MARGIN) == "ping"
            assert hub.running
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, t(10))


async def test_pings_come_every_interval_when_the_timeout_is_longer(server_kind: str) -> None:
    """With ``heartbeat_timeout`` longer than the interval (the old library's 30 s / 60 s),
    a client that answers at once is pinged an interval after its pong, not a timeout after
    the ping: a proxy's idle timer between the two must not cut it."""
    hub = Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=4 * INTERVAL, heartbeat_clients="all")
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        loop = asyncio.get_running_loop()
        seen: list[float] = []
        for _ in range(6):
            frame = await asyncio.wait_for(ws.recv(), 8 * INTERVAL)
            assert frame == "ping"
            seen.append(loop.time())
            await ws.send("pong")
    gaps = [b - a for a, b in itertools.pairwise(seen)]
    assert max(gaps) < INTERVAL + MARGIN, gaps  # before the fix: about 4 * INTERVAL each
    assert hub.stats()["heartbeat_timeouts"] == 0


# -- heartbeat_clients: who gets the text heartbeat -------------------------------------------


async def test_plain_json_client_sees_only_app_messages_at_defaults(server_kind: str) -> None:
    """At the default ``heartbeat_clients="opted_in"`` a plain client that parses every message
    as JSON and never answers ``ping`` gets only the app's messages and is never closed 4408,
    however long it stays idle; its text ``pong`` is app data."""
    hub = Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)  # fast, else defaults
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/echo") as ws:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 8 * (INTERVAL + TIMEOUT))
        for text in ('{"n": 1}', '{"n": 2}', "pong"):
            await ws.send(text)
            answer = await asyncio.wait_for(ws.recv(), t(2))
            assert answer == text
        assert json.loads('{"n": 1}') == {"n": 1}
        assert hub.connection_count == 1
    assert rec.received == ['{"n": 1}', '{"n": 2}', "pong"]
    assert hub.stats()["heartbeat_timeouts"] == 0
    assert hub.stats()["pings_sent"] == 0


async def test_opted_in_client_keeps_the_text_heartbeat(server_kind: str) -> None:
    """A client that opted in (``_stabilizer=1``) is pinged and closed 4408 when silent,
    within interval + timeout, at the default ``heartbeat_clients``."""
    hub = Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record?_stabilizer=1") as ws:
        session = json.loads(await asyncio.wait_for(ws.recv(), t(2)))
        assert session["$stabilizer"] == "session"
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await asyncio.wait_for(ws.recv(), INTERVAL + MARGIN) == "ping"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), INTERVAL + TIMEOUT + MARGIN)
        assert ws.close_code == CloseCode.HEARTBEAT_TIMEOUT
        assert loop.time() - start <= INTERVAL + TIMEOUT + MARGIN


async def test_plain_client_that_pings_joins_the_text_heartbeat(server_kind: str) -> None:
    """A plain client that sends the text ``ping`` itself speaks the heartbeat: it gets
    ``pong``, then our pings, and 4408 when it falls silent."""
    hub = Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url, client(url + "/record") as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), t(2)) == "pong"
        assert await asyncio.wait_for(ws.recv(), INTERVAL + MARGIN) == "ping"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), INTERVAL + TIMEOUT + MARGIN)
        assert ws.close_code == CloseCode.HEARTBEAT_TIMEOUT
    assert rec.received == []


@pytest.mark.parametrize("kind", UVICORN_KINDS)
async def test_dead_plain_client_is_found_by_uvicorns_keepalive(kind: str) -> None:
    """A plain client whose path dies silently is found by uvicorn's protocol keepalive (the
    README's ``--ws-ping-interval``/``--ws-ping-timeout``) within interval + timeout (plus 10 s
    on the legacy implementation), and leaves the registry. (hypercorn never checks its pings'
    answers: see the README.)"""
    hub = Hub(heartbeat_interval=INTERVAL, heartbeat_timeout=TIMEOUT)
    app, _ = build("starlette", hub)
    ping = t(0.3)
    async with serve(app, kind, ws_ping_interval=ping, ws_ping_timeout=ping) as url:
        port = int(url.rsplit(":", 1)[1])
        async with CutProxy(port) as proxy:
            ws = await client(f"ws://127.0.0.1:{proxy.port}/echo").__aenter__()
            await wait_count(hub, 1, t(2))
            loop = asyncio.get_running_loop()
            proxy.freeze()
            frozen = loop.time()
            await wait_count(hub, 0, t(30))
            found = loop.time() - frozen
            print(f"\n[{kind}] found after {found:.2f} s")
            await ws.__aexit__(None, None, None)
    # uvicorn's legacy implementation then waits websockets' close_timeout (10 s) for the TCP
    # connection to close before it tells the app.
    closing = 10.0 if kind == "uvicorn-websockets" else 0.0
    assert found <= 3 * ping + closing + MARGIN + t(1), found
    assert hub.stats()["heartbeat_timeouts"] == 0  # the server found it, not our heartbeat


@pytest.mark.parametrize(("ping", "warned"), [(None, True), (t(20), False)])
async def test_start_up_warns_when_plain_clients_are_unwatched(
    ping: float | None, warned: bool
) -> None:
    """Under uvicorn with its protocol keepalive off, start-up warns that plain clients have
    no liveness check (and says what to set); with it on, it does not."""
    hub = Hub(heartbeat_interval=INTERVAL)
    app, _ = build("starlette", hub)
    with capture_logs() as logs:
        async with serve(app, "uvicorn-sansio", ws_ping_interval=ping, ws_ping_timeout=ping):
            pass
    warnings = [e for e in logs if e["event"] == "plain_clients_unwatched"]
    assert bool(warnings) is warned
    if warned:
        assert warnings[0]["server"] == "uvicorn"
        assert "--ws-ping-interval" in warnings[0]["hint"]
