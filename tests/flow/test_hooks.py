"""Hooks: ``on_connect`` and ``on_disconnect``, sync or async, and errors that never escape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import ConnectionHandle, Hub, StabilizerMiddleware

from ..timing import until
from .fakes import FakeSocket, Probe, echo_app, finish, holding_app, record_app
from .served import end_all, serve

Ending = tuple[ConnectionHandle, int, str, str]


class Calls:
    """What the hooks were called with, in order."""

    def __init__(self) -> None:
        self.connected: list[tuple[ConnectionHandle, str]] = []
        self.disconnected: list[Ending] = []

    def on_connect(self, handle: ConnectionHandle) -> None:
        self.connected.append((handle, handle.state))

    async def on_connect_async(self, handle: ConnectionHandle) -> None:
        self.on_connect(handle)

    def on_disconnect(self, handle: ConnectionHandle, code: int, reason: str, by: str) -> None:
        self.disconnected.append((handle, code, reason, by))

    async def on_disconnect_async(
        self, handle: ConnectionHandle, code: int, reason: str, by: str
    ) -> None:
        self.on_disconnect(handle, code, reason, by)


def close_4001(probe: Probe) -> ASGIApp:
    """Accept, then close with 4001 "done" and return."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4001, "reason": "done"})

    return app


def accept_and_return(probe: Probe) -> ASGIApp:
    """Accept and return at once."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        probe.scope = scope
        await receive()
        await send({"type": "websocket.accept"})

    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_connect_gets_the_open_handle(kind: str) -> None:
    """``on_connect`` (sync or async) is called once, right after accept, with the handle."""
    calls = Calls()
    hub = Hub(on_connect=calls.on_connect if kind == "sync" else calls.on_connect_async)
    one = await serve(hub, query="client_id=alice")
    (connected,) = calls.connected
    assert connected == (one.handle, "open")
    assert connected[0].client_id == "alice"
    await end_all([one])
    assert len(calls.connected) == 1


@pytest.mark.parametrize(
    ("app", "ending"),
    [
        (record_app, (1001, "", "client")),
        (close_4001, (4001, "done", "app")),
        (accept_and_return, (1000, "", "middleware")),
    ],
    ids=["client", "app", "middleware"],
)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_disconnect_gets_code_reason_and_closer(
    kind: str, app: Callable[[Probe], ASGIApp], ending: tuple[int, str, str]
) -> None:
    """``on_disconnect`` (sync or async) gets the handle, code, reason and who closed."""
    calls = Calls()
    hub = Hub(on_disconnect=calls.on_disconnect if kind == "sync" else calls.on_disconnect_async)
    probe = Probe()
    sock = FakeSocket()
    task = sock.serve(StabilizerMiddleware(app(probe), hub=hub))
    await sock.accepted()
    sock.disconnect(1001)
    await finish(task)
    await until(lambda: bool(calls.disconnected), "on_disconnect is called")
    ((handle, *rest),) = calls.disconnected
    assert tuple(rest) == ending
    assert probe.scope is not None
    assert handle is probe.scope["state"]["stabilizer"]
    assert handle.state == "closed"
    assert handle.close_code == ending[0]


Raiser = Callable[..., Awaitable[None] | None]


def raising(kind: str) -> Raiser:
    def sync_hook(*args: object) -> None:
        raise ValueError("hook broke")

    async def async_hook(*args: object) -> None:
        raise ValueError("hook broke")

    return sync_hook if kind == "sync" else async_hook


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_connect_error_is_logged_and_the_connection_lives(kind: str) -> None:
    """An exception in ``on_connect`` is logged as ``hook_error``; the socket works on."""
    hub = Hub(on_connect=raising(kind))
    with capture_logs() as logs:
        one = await serve(hub, app=echo_app)
        one.sock.text("still here")
        assert (await one.sock.next_sent())["text"] == "echo:still here"
    (event,) = [e for e in logs if e["event"] == "hook_error"]
    assert (event["hook"], event["log_level"]) == ("on_connect", "error")
    assert isinstance(event["exc_info"], ValueError)
    assert one.handle.state == "open"
    assert hub.stats()["app_errors"] == 0
    await end_all([one])


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_disconnect_error_is_logged_and_the_close_completes(kind: str) -> None:
    """An exception in ``on_disconnect`` is logged as ``hook_error``; the close still completes."""
    hub = Hub(on_disconnect=raising(kind))
    with capture_logs() as logs:
        one = await serve(hub, app=record_app)
        one.sock.disconnect(1001)
        await finish(one.task)
        await until(lambda: any(e["event"] == "hook_error" for e in logs), "the error is logged")
    (event,) = [e for e in logs if e["event"] == "hook_error"]
    assert (event["hook"], event["log_level"]) == ("on_disconnect", "error")
    assert hub.connection_count == 0
    assert hub.stats()["closes"] == {"1001": 1}
    assert hub.stats()["app_errors"] == 0


async def test_hooks_given_to_the_middleware() -> None:
    """Hooks passed to ``StabilizerMiddleware`` reach the hub it builds."""
    calls = Calls()
    probe = Probe()
    mw = StabilizerMiddleware(
        holding_app(probe), on_connect=calls.on_connect, on_disconnect=calls.on_disconnect
    )
    sock = FakeSocket()
    task = sock.serve(mw)
    await sock.accepted()
    assert len(calls.connected) == 1
    probe.release.set()
    await finish(task)
    ((_, code, _, by),) = calls.disconnected
    assert (code, by) == (1000, "middleware")


async def test_no_hooks_for_a_connection_never_accepted() -> None:
    """Neither hook runs for a handshake refused by admission or by the app."""
    calls = Calls()
    hub = Hub(on_connect=calls.on_connect, on_disconnect=calls.on_disconnect, max_connections=1)

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})

    refused_by_app = FakeSocket()
    await finish(refused_by_app.serve(StabilizerMiddleware(refuse, hub=hub)))
    assert [m["type"] for m in refused_by_app.sent] == ["websocket.close"]
    assert calls.connected == []
    assert calls.disconnected == []
    held = await serve(hub)
    refused_by_admission = FakeSocket()
    await finish(refused_by_admission.serve(StabilizerMiddleware(refuse, hub=hub)))
    assert refused_by_admission.sent[0]["status"] == 503
    assert [handle for handle, _ in calls.connected] == [held.handle]
    assert calls.disconnected == []
    await end_all([held])
