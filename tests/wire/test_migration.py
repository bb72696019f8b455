"""The ported fastapi-websocket-stabilizer app on real servers.

``examples/migrate_from_fastapi_websocket_stabilizer.py`` under uvicorn and hypercorn: identity
from the ``/ws/{client_id}`` path, direct sends, broadcast, the JSON heartbeat answered by a
client written for the old library, rooms, resumption, drain, and the old config keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_ws_stabilizer import CloseCode, Hub, StabilizerMiddleware
from examples.migrate_from_fastapi_websocket_stabilizer import OLD_PING, SETTINGS, create_app

from ..conftest import client
from ..servers import free_port, serve, wait_for_port
from ..timing import t
from .test_heartbeat import wait_count

INTERVAL = t(0.15)
TIMEOUT = t(0.3)


def ported_hub(**overrides: Any) -> Hub:
    """A hub with the example's settings, a fast heartbeat, and ``overrides``."""
    settings: dict[str, Any] = {
        **SETTINGS,
        "heartbeat_interval": INTERVAL,
        "heartbeat_timeout": TIMEOUT,
        **overrides,
    }
    return Hub(**settings)


class OldClient:
    """A client written for fastapi-websocket-stabilizer.

    It answers every JSON message of ``"type": "ping"`` with ``pong`` and hands the rest on.
    """

    def __init__(self, ws: ClientConnection, pong: str = "pong") -> None:
        self.ws = ws
        self.pong = pong
        self.pings = 0
        self.inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed: ConnectionClosed | None = None
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, str) and frame.startswith("{"):
                    message = json.loads(frame)
                    if isinstance(message, dict) and message.get("type") == "ping":
                        self.pings += 1
                        await self.ws.send(self.pong)
                        continue
                await self.inbox.put(frame)
        except ConnectionClosed as exc:
            self.closed = exc

    async def next(self) -> str | bytes:
        """The next frame that is not a ping."""
        return await asyncio.wait_for(self.inbox.get(), t(5))

    async def next_json(self) -> Any:
        """The next frame that is not a ping, parsed as JSON."""
        frame = await self.next()
        assert isinstance(frame, str)
        return json.loads(frame)

    async def ended(self) -> ConnectionClosed:
        """Wait until the server closed the socket; the close it sent."""
        await asyncio.wait_for(self._task, t(5))
        assert self.closed is not None
        return self.closed


def http_base(url: str) -> str:
    return url.replace("ws://", "http://")


async def test_quick_start_chat_with_old_client_heartbeat(server_kind: str) -> None:
    """Old clients at /ws/{id} answer the JSON ping with pong, stay open, never see the pong
    come back as chat, and get every chat message as {"user", "message"}."""
    hub = ported_hub()
    async with serve(create_app(hub), server_kind) as url:
        async with client(url + "/ws/alice") as a, client(url + "/ws/bob") as b:
            alice, bob = OldClient(a), OldClient(b)
            # Longer than interval + timeout: only the answered pings kept them open.
            await asyncio.sleep(2 * INTERVAL + TIMEOUT)
            assert alice.pings >= 2
            assert bob.pings >= 2
            assert alice.closed is None
            assert bob.closed is None
            assert sorted(hub.client_ids()) == ["alice", "bob"]
            await a.send("hello")
            expected = {"user": "alice", "message": "hello"}
            # The first chat message each one gets: a pong that reached the app would be here.
            assert await alice.next_json() == expected
            assert await bob.next_json() == expected
    assert hub.stats()["heartbeat_timeouts"] == 0


async def test_json_pong_answered_by_client() -> None:
    """With pong_message '{"type":"pong"}', a client answering that JSON is kept alive too."""
    hub = ported_hub(pong_message='{"type":"pong"}')
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/carol") as c:
            carol = OldClient(c, pong='{"type":"pong"}')
            await asyncio.sleep(2 * INTERVAL + TIMEOUT)
            assert carol.pings >= 2
            assert carol.closed is None
            await c.send("still here")
            assert await carol.next_json() == {"user": "carol", "message": "still here"}


async def test_old_client_that_stops_answering_is_closed_4408() -> None:
    """A client that ignores the JSON ping is closed with 4408 after interval + timeout."""
    hub = ported_hub()
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/dave") as ws:
            frame = await asyncio.wait_for(ws.recv(), t(2))
            assert frame == OLD_PING
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), t(3))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.HEARTBEAT_TIMEOUT


async def test_send_to_reaches_client_identified_by_path(server_kind: str) -> None:
    """hub.send_to("user123") and POST /direct/user123 reach the socket at /ws/user123;
    an id with no socket is a 404."""
    hub = ported_hub()
    async with serve(create_app(hub), server_kind) as url:
        async with client(url + "/ws/user123") as ws, httpx.AsyncClient() as http:
            user = OldClient(ws)
            assert await hub.send_to("user123", "Direct message") == 1
            assert await user.next() == "Direct message"
            answer = await http.post(
                http_base(url) + "/direct/user123", params={"message": "via HTTP"}
            )
            assert answer.status_code == 200
            assert answer.json() == {"sockets": 1}
            assert await user.next() == "via HTTP"
            missing = await http.post(http_base(url) + "/direct/nobody")
            assert missing.status_code == 404
            assert hub.client_ids() == ["user123"]


async def test_bad_client_id_in_path_is_refused_before_accept() -> None:
    """A path id that is not a valid client id is refused with HTTP 403 before accept."""
    hub = ported_hub()
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        with pytest.raises(InvalidStatus) as refused:
            async with client(url + "/ws/not%20valid"):
                pass
    assert refused.value.response.status_code == 403


async def test_broadcast_exclude_and_stats() -> None:
    """POST /broadcast reaches everyone or all but ``exclude``; GET /stats lists the clients."""
    hub = ported_hub()
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/alice") as a, client(url + "/ws/bob") as b:
            alice, bob = OldClient(a), OldClient(b)
            async with httpx.AsyncClient(base_url=http_base(url)) as http:
                everyone = await http.post("/broadcast")
                assert everyone.json() == {"targeted": 2, "queued": 2, "dropped": 0, "closed": 0}
                assert await alice.next() == "System message"
                assert await bob.next() == "System message"
                others = await http.post(
                    "/broadcast", params={"message": "not for alice", "exclude": "alice"}
                )
                assert others.json()["targeted"] == 1
                assert await bob.next() == "not for alice"
                stats = (await http.get("/stats")).json()
            await a.send("after")
            # alice's next frame is her own chat message: the excluded broadcast never came.
            assert await alice.next_json() == {"user": "alice", "message": "after"}
    assert stats["active_connections"] == 2
    assert sorted(stats["client_ids"]) == ["alice", "bob"]
    assert stats["memory"]["connections"] == 2
    assert stats["counters"]["broadcasts"] == 2


async def test_profile_user_data_and_room() -> None:
    """Pattern 5: the username is kept in user_data, and the room is a group hub.publish reaches."""
    hub = ported_hub()
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/profile/alice?username=Alice&room=general") as ws:
            alice = OldClient(ws)
            assert await alice.next() == "Alice joined"
            assert hub.group_members("general") == ["alice"]
            result = await hub.publish("general", {"news": 1})
            assert result.queued == 1
            assert await alice.next_json() == {"news": 1}
            await ws.send("hi room")
            assert await alice.next_json() == {"user": "Alice", "message": "hi room"}


async def test_reconnect_gets_missed_direct_message() -> None:
    """Pattern 3: a client at /ws/user123 that opted in gets a message sent while it was away."""
    hub = ported_hub(secret_key="k" * 32)
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/user123?_stabilizer=1") as ws:
            first = OldClient(ws)
            session = await first.next_json()
            assert session["$stabilizer"] == "session"
            await hub.send_to("user123", "one")
            assert await first.next() == "one"
        await wait_count(hub, 0, t(5))
        assert await hub.send_to("user123", "while away") == 0  # kept for the session
        query = f"_stabilizer=1&_stabilizer_token={session['token']}&_stabilizer_seq=1"
        async with client(url + "/ws/user123?" + query) as ws:
            back = OldClient(ws)
            resumed = await back.next_json()
            assert resumed["resumed"] is True
            assert resumed["replayed"] == 1
            assert await back.next() == "while away"
            assert hub.client_ids() == ["user123"]


async def test_drain_closes_old_clients_with_1012() -> None:
    """The old graceful_shutdown() is hub.drain(): clients get 1012 "server restarting"."""
    hub = ported_hub(drain_timeout=t(2), drain_spread=0)
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/alice") as ws:
            alice = OldClient(ws)
            report = await hub.drain()
            closed = await alice.ended()
    assert report.closed == 1
    assert report.timed_out == 0
    assert closed.rcvd is not None
    assert closed.rcvd.code == CloseCode.SERVICE_RESTART
    assert closed.rcvd.reason == "server restarting"


async def test_accepted_old_keys_apply() -> None:
    """Old keys with a counterpart work: max_message_size closes 1009, max_connections refuses
    with HTTP 503, a timedelta ttl and "oldest" map, enable_reconnect=True is accepted."""
    old_config: dict[str, Any] = {
        "heartbeat_interval": 30.0,
        "heartbeat_timeout": 60.0,
        "max_connections": 1,
        "max_message_size": 1024,
        "reconnect_token_ttl": timedelta(hours=1),
        "enable_reconnect": True,
        "log_level": "INFO",
        "num_shards": 32,
        "max_concurrent_cleanup": 100,
        "max_concurrent_broadcast": 1000,
        "memory_eviction_policy": "oldest",
        "max_memory_per_connection": 1024 * 1024,
        "max_total_memory": 1024 * 1024 * 1024,
    }
    hub = Hub(**old_config)
    assert hub.settings.reconnect_token_ttl == 3600.0
    assert hub.settings.memory_eviction_policy == "fifo"
    async with serve(create_app(hub), "uvicorn-sansio") as url:
        async with client(url + "/ws/alice") as ws:
            with pytest.raises(InvalidStatus) as refused:
                async with client(url + "/ws/bob"):
                    pass
            assert refused.value.response.status_code == 503
            await ws.send("x" * 2000)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), t(5))
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG


async def fails_to_start(config: uvicorn.Config) -> None:
    """Run uvicorn with ``config`` and check that it exits at startup (status 3)."""
    server = uvicorn.Server(config)
    # Should it start after all, stop it, so that the test fails instead of hanging.
    watchdog = asyncio.get_running_loop().call_later(t(5), setattr, server, "should_exit", True)
    try:
        # Awaited in this task, not wrapped in one: uvicorn calls sys.exit(3), and a
        # SystemExit that ends a task stops the event loop.
        with pytest.raises(SystemExit) as exited:
            await server.serve()
    finally:
        watchdog.cancel()
    assert exited.value.code == 3
    assert not server.started


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("compression", "none", "--ws-per-message-deflate"),
        ("memory_check_interval", "60", "hub.memory_usage()"),
        ("heartbeat_type", "ping", "ping_message"),
        ("enable_reconnect", "false", "_stabilizer=1"),
    ],
)
async def test_refused_old_key_fails_uvicorn_startup(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    key: str,
    value: str,
    hint: str,
) -> None:
    """An old key without a counterpart, as an env var, stops uvicorn at startup with a
    message naming the variable and what to use instead."""
    env = "WS_STABILIZER_" + key.upper()
    monkeypatch.setenv(env, value)
    app = FastAPI()
    app.add_middleware(StabilizerMiddleware)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="on", log_config=None)
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        await fails_to_start(config)
    errors = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
    assert "Application startup failed. Exiting." in errors
    (message,) = [m for m in errors if env in m]
    assert hint in message


async def test_refused_old_keyword_fails_startup() -> None:
    """An old keyword without a counterpart fails the server's lifespan startup as well."""
    app = FastAPI()
    settings: dict[str, Any] = {"compression": "deflate"}
    app.add_middleware(StabilizerMiddleware, **settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), lifespan="on", log_config=None)
    await fails_to_start(config)


@pytest.mark.parametrize("kind", ["uvicorn-sansio", "uvicorn-wsproto", "hypercorn"])
async def test_compression_is_negotiated_by_the_server(kind: str) -> None:
    """With the servers' defaults, permessage-deflate is negotiated when the client offers it
    (what the old ``compression="deflate"`` promised), with no setting of ours."""
    async with serve(create_app(ported_hub()), kind) as url:
        async with client(url + "/ws/alice") as ws:
            assert ws.response is not None
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    assert "permessage-deflate" in extensions


async def test_uvicorn_flag_turns_compression_off() -> None:
    """uvicorn's ``ws_per_message_deflate=False`` (``--ws-per-message-deflate false``) is what
    the old ``compression="none"`` promised."""
    port = free_port()
    config = uvicorn.Config(
        create_app(ported_hub()),
        host="127.0.0.1",
        port=port,
        lifespan="on",
        log_level="warning",
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for_port(port)
        async with client(f"ws://127.0.0.1:{port}/ws/alice") as ws:
            assert ws.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.response.headers
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, t(15))
