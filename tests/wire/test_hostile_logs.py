"""Hostile handshakes against real servers: no client-chosen character reaches a log line raw.

Each test runs on every server kind and under two structlog setups: structlog's own default
(its console renderer) and a JSON renderer. A raw ESC sequence, NEL (U+0085) or U+2028 in a
console log line can erase or forge the lines around it; every one of them must come out as
its visible escape (``\\x1b``, ``\\x85``, ``\\u2028``), and close codes as plain numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_ws_stabilizer import Hub

from ..apps import build
from ..conftest import client
from ..servers import serve
from ..timing import t
from .test_heartbeat import wait_count

FORGED_ID = "\x1b[2K\x1b[1AFORGED"
"""Erases the line before it on a terminal and writes its own."""
FORGED_ID_QUERY = "%1B%5B2K%1B%5B1AFORGED"
FORGED_ID_LOGGED = r"\x1b[2K\x1b[1AFORGED"

HOSTILE_PATH_RAW = "/nope%1b[2K%1b[1A%e2%80%a8%c2%85FORGED"
"""A route that does not exist; the server percent-decodes it into ``scope["path"]``."""
HOSTILE_PATH_LOGGED = r"/nope\x1b[2K\x1b[1A\u2028\x85FORGED"

FOREIGN_ORIGIN = b"http://evil.example"

# Colour codes the console renderer itself may add around keys and values (it does on a
# terminal); a hostile ESC[2K or ESC[1A is not one of them, so it survives this.
_SGR = re.compile(r"\x1b\[[0-9;]*m")


class Captured:
    """Everything structlog rendered during one test, as one renderer wrote it."""

    def __init__(self, renderer: str, buffer: io.StringIO) -> None:
        self.renderer = renderer
        self.buffer = buffer

    def lines(self) -> list[str]:
        """The rendered lines, the console's own colour codes removed."""
        return [_SGR.sub("", line) for line in self.buffer.getvalue().split("\n") if line]

    def events(self) -> list[dict[str, Any]]:
        """The JSON events (JSON renderer only)."""
        assert self.renderer == "json"
        return [json.loads(line) for line in self.lines()]

    def has(self, key: str, logged: str | int) -> bool:
        """Whether some event logged field ``key`` as ``logged`` (exactly, in JSON)."""
        if self.renderer == "json":
            return any(event.get(key) == logged for event in self.events())
        # The values here have no space, quote or "=", so the console writes them unquoted.
        return any(f"{key}={logged}" in line.split(" ") for line in self.lines())

    def assert_clean(self) -> None:
        """No rendered line holds a control or line-separator character."""
        lines = self.lines()
        assert lines, "nothing was logged"
        dirty = [line for line in lines if not line.isprintable()]
        assert not dirty, f"raw control characters in {dirty!r}"


@pytest.fixture(params=("console", "json"))
def logs(request: pytest.FixtureRequest) -> Iterator[Captured]:
    """structlog configured as an application would, writing to a buffer; reset afterwards."""
    buffer = io.StringIO()
    structlog.reset_defaults()
    factory = structlog.PrintLoggerFactory(file=buffer)
    if request.param == "console":
        # structlog's default processors, its console renderer last: what an app that never
        # configured structlog gets.
        structlog.configure(logger_factory=factory, cache_logger_on_first_use=False)
    else:
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            logger_factory=factory,
            cache_logger_on_first_use=False,
        )
    try:
        yield Captured(str(request.param), buffer)
    finally:
        structlog.reset_defaults()


async def raw_handshake(url: str, target: str, headers: dict[bytes, bytes] | None = None) -> str:
    """Send a WebSocket upgrade for ``target`` with ``headers``; the response's status line.

    Raw bytes on a socket, so header bytes and the path reach the server exactly as written: a
    client library may refuse or re-encode them.
    """
    host_port = url.removeprefix("ws://")
    host, port = host_port.split(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), t(5))
    try:
        lines = [
            b"GET " + target.encode("ascii") + b" HTTP/1.1",
            b"Host: " + host_port.encode("ascii"),
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"Sec-WebSocket-Version: 13",
        ]
        lines += [name + b": " + value for name, value in (headers or {}).items()]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await asyncio.wait_for(writer.drain(), t(5))
        status = await asyncio.wait_for(reader.readline(), t(5))
        return status.decode("latin-1").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.wait_closed(), t(2))


def skip_if_server_refused_bytes(server_kind: str, status: str) -> None:
    """Skip where the server itself fails a handshake with non-ASCII header bytes.

    uvicorn's legacy ``websockets`` implementation answers 500 before any app runs (it cannot
    re-encode such a header for the scope), so nothing of ours sees or logs the value.
    """
    if server_kind == "uvicorn-websockets" and status.startswith("HTTP/1.1 500"):
        pytest.skip("the server refuses non-ASCII header bytes itself, before the app")


async def refused_status(url: str) -> int:
    """The HTTP status that refused the websockets client's handshake to ``url``."""
    with pytest.raises(InvalidStatus) as info:
        async with client(url):
            pass
    return int(info.value.response.status_code)


async def wait_logged(logs: Captured, event: str, within: float) -> None:
    """Wait until ``event`` is logged, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not any(event in line for line in logs.lines()):
        assert loop.time() < deadline, f"{event} never logged in {logs.lines()!r}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("path", ["/echo", HOSTILE_PATH_RAW])
async def test_refused_client_id_is_escaped(server_kind: str, logs: Captured, path: str) -> None:
    """A client id that erases log lines is refused 400 and logged escaped, with its path."""
    hub = Hub(heartbeat_interval=None)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        status = await raw_handshake(url, f"{path}?client_id={FORGED_ID_QUERY}")
    assert status.startswith("HTTP/1.1 400"), status
    assert rec.calls == 0
    logs.assert_clean()
    assert logs.has("reason", "bad_client_id")
    assert logs.has("client_id", FORGED_ID_LOGGED)
    assert logs.has("path", "/echo" if path == "/echo" else HOSTILE_PATH_LOGGED)
    assert not any(FORGED_ID in line for line in logs.lines())


async def test_refused_client_id_from_websockets_client(server_kind: str, logs: Captured) -> None:
    """The same hostile client id sent by an ordinary client library is logged escaped."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("fastapi", hub)
    async with serve(app, server_kind) as url:
        assert await refused_status(f"{url}/echo?client_id={FORGED_ID_QUERY}") == 400
    logs.assert_clean()
    assert logs.has("client_id", FORGED_ID_LOGGED)


@pytest.mark.parametrize(
    ("origin", "logged"),
    [
        (b"http://evil.example\x85FORGED", r"http://evil.example\x85FORGED"),
        # U+2028 as UTF-8: read as latin-1 (as headers are), its middle byte is a C1 control.
        ("http://evil.example\u2028FORGED".encode(), "http://evil.example\u00e2\\x80\u00a8FORGED"),
    ],
)
async def test_foreign_origin_is_escaped(
    server_kind: str, logs: Captured, origin: bytes, logged: str
) -> None:
    """A foreign Origin carrying NEL or a line separator is refused 403 and logged escaped."""
    hub = Hub(heartbeat_interval=None)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        status = await raw_handshake(url, "/echo", {b"Origin": origin})
    skip_if_server_refused_bytes(server_kind, status)
    assert status.startswith("HTTP/1.1 403"), status
    assert rec.calls == 0
    logs.assert_clean()
    assert logs.has("reason", "origin_not_allowed")
    assert logs.has("origin", logged)


async def test_hostile_path_is_escaped(server_kind: str, logs: Captured) -> None:
    """A path that percent-decodes to ESC, U+2028 and NEL is logged escaped when refused."""
    hub = Hub(heartbeat_interval=None)
    app, rec = build("starlette", hub)
    async with serve(app, server_kind) as url:
        status = await raw_handshake(url, HOSTILE_PATH_RAW, {b"Origin": FOREIGN_ORIGIN})
    assert status.startswith("HTTP/1.1 403"), status
    assert rec.calls == 0
    logs.assert_clean()
    assert logs.has("path", HOSTILE_PATH_LOGGED)


async def test_forwarded_remote_ip_is_escaped(server_kind: str, logs: Captured) -> None:
    """A remote ip taken from X-Forwarded-For (uvicorn trusts loopback) is logged escaped."""
    if server_kind == "hypercorn":
        pytest.skip("hypercorn does not read X-Forwarded-For unless told to")
    hub = Hub(heartbeat_interval=None)
    app, _ = build("starlette", hub)
    headers = {b"Origin": FOREIGN_ORIGIN, b"X-Forwarded-For": b"10.0.0.1\x85FORGED"}
    async with serve(app, server_kind) as url:
        status = await raw_handshake(url, "/echo", headers)
    skip_if_server_refused_bytes(server_kind, status)
    assert status.startswith("HTTP/1.1 403"), status
    logs.assert_clean()
    assert logs.has("remote_ip", r"10.0.0.1\x85FORGED")


async def test_client_close_reason_is_escaped(server_kind: str, logs: Captured) -> None:
    """A client's close reason with ESC, NEL and U+2028 never reaches the log raw."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        async with client(f"{url}/listen?client_id=ok") as ws:
            await ws.send("hello")
            await asyncio.wait_for(ws.close(4000, "bye\x1b[2K\x85\u2028FORGED"), t(5))
        await wait_logged(logs, "connection_closed", t(5))
    logs.assert_clean()
    assert logs.has("client_id", "ok")
    reasons = (
        [e["reason"] for e in logs.events() if e["event"] == "connection_closed"]
        if logs.renderer == "json"
        else [
            word.removeprefix("reason=")
            for line in logs.lines()
            if "connection_closed" in line
            for word in line.split(" ")
            if word.startswith("reason=")
        ]
    )
    escaped = r"bye\x1b[2K\x85\u2028FORGED"
    if server_kind == "hypercorn" and reasons == [""]:
        # Its websocket.disconnect carries no reason: nothing of the client's reaches the log.
        pytest.skip("hypercorn passes no close reason to the app")
    assert reasons == [escaped]


async def test_drain_logs_plain_close_code(server_kind: str, logs: Captured) -> None:
    """A drain logs code=1012, never an enum repr; a hostile handshake meanwhile is escaped."""
    hub = Hub(heartbeat_interval=None)
    app, _ = build("starlette", hub)
    async with serve(app, server_kind) as url:
        async with client(f"{url}/listen?client_id=ok") as ws:
            await wait_count(hub, 1, t(5))
            report = await asyncio.wait_for(hub.drain(timeout=t(1)), t(5))
            assert report.closed == 1
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), t(5))
            assert ws.close_code == 1012
        await wait_count(hub, 0, t(5))
        status = await raw_handshake(url, f"/echo?client_id={FORGED_ID_QUERY}")
        assert status.startswith("HTTP/1.1 503"), status
    assert not any("CloseCode" in line for line in logs.lines())
    if logs.renderer == "json":
        codes = [(e["event"], e["code"]) for e in logs.events() if "code" in e]
        assert codes == [("drain_started", 1012), ("connection_closed", 1012)]
    else:
        drained = [line for line in logs.lines() if "drain_started" in line]
        closed = [line for line in logs.lines() if "connection_closed" in line]
        assert len(drained) == 1
        assert "code=1012" in drained[0].split(" ")
        assert len(closed) == 1
        assert "code=1012" in closed[0].split(" ")
    logs.assert_clean()
    assert logs.has("reason", "draining")
    assert logs.has("client_id", FORGED_ID_LOGGED)
