"""The examples: every module imports, its docstring gives commands that work from a fresh clone
(``.venv/bin/python -m ...``, the venv the README's setup creates), its page loads the shipped
client and derives the WebSocket URL from ``location``, and the chat's join/leave notices stay
quiet about sockets that resume. The pages themselves run in Chromium in
``tests/browser/test_examples.py``."""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
import re
import time
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient
from websockets.asyncio.client import ClientConnection

import examples
from examples import chat

from .conftest import client
from .servers import serve
from .timing import t

MODULES = sorted(info.name for info in pkgutil.iter_modules(examples.__path__))


def load(name: str) -> ModuleType:
    return importlib.import_module(f"examples.{name}")


def test_there_are_examples() -> None:
    """The discovery finds the examples the README names."""
    assert {"starlette_echo", "chat", "fastapi_app", "cut_proxy"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_example_imports_and_says_what_it_shows(name: str) -> None:
    """Each example imports cleanly and has a docstring that says how to run it."""
    module = load(name)
    assert module.__doc__ is not None
    assert len(module.__doc__.strip()) > 100, "say what the example shows"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_commands_run_from_a_fresh_clone(name: str) -> None:
    """An app is run as ``.venv/bin/python -m uvicorn examples.<module>:app`` (a bare
    ``uvicorn`` is "command not found" without an activated venv), and the docstring says which
    port to open; any other command in it runs through ``.venv/bin/python -m`` too."""
    module = load(name)
    doc = module.__doc__ or ""
    for line in doc.splitlines():
        if re.search(r"\buvicorn examples\.|-m examples\.", line):
            assert ".venv/bin/python -m " in line, f"not runnable from a fresh clone: {line!r}"
    if hasattr(module, "app"):
        assert f".venv/bin/python -m uvicorn examples.{name}:app" in doc
        assert re.search(r"\b8000\b|--port", doc), "say which port it serves"
    else:
        assert f".venv/bin/python -m examples.{name}" in doc


APP_MODULES = [name for name in MODULES if hasattr(load(name), "app")]


@pytest.mark.parametrize("name", APP_MODULES)
def test_page_uses_the_client_and_the_page_scheme(name: str) -> None:
    """A page at ``/`` imports the shipped client, which the app serves, and builds its
    WebSocket URL from ``location`` (``ws:`` over http, ``wss:`` over https), never a fixed
    scheme."""
    with TestClient(load(name).app) as http:
        response = http.get("/")
        if response.status_code == 404 or "html" not in response.headers["content-type"]:
            pytest.skip(f"examples.{name} serves no page")
        page = response.text
        assert 'from "/stabilizer.js"' in page
        assert http.get("/stabilizer.js").status_code == 200
    assert "ws://" not in page
    assert "wss://" not in page
    assert 'location.protocol === "https:" ? "wss:" : "ws:"' in page
    assert "location.host" in page


def test_echo_demo_greets_and_echoes() -> None:
    """The first demo's socket greets with the session news and echoes (plain client)."""
    from examples import starlette_echo

    with TestClient(starlette_echo.create_app()) as http, http.websocket_connect("/ws") as ws:
        assert re.fullmatch(r"hello \S+: new session", ws.receive_text())
        ws.send_text("hi")
        assert ws.receive_text() == "echo: hi"
        assert http.get("/stats").json()["accepted"] == 1


def test_echo_demo_serves_its_metrics() -> None:
    """Started with metrics on, the demo's ``/metrics`` shows the socket it just served."""
    from examples import starlette_echo

    with TestClient(starlette_echo.create_app(enable_metrics=True)) as http:
        before = accepted(http.get("/metrics").text)
        with http.websocket_connect("/ws") as ws:
            ws.receive_text()
        assert accepted(http.get("/metrics").text) == before + 1


def accepted(metrics: str) -> float:
    (line,) = [
        x for x in metrics.splitlines() if x.startswith("asgi_ws_connections_accepted_total")
    ]
    return float(line.split()[-1])


async def test_echo_demo_ticker_reaches_sockets() -> None:
    """The ticker started in the lifespan broadcasts ``tick N`` every second."""
    from examples import starlette_echo

    async with serve(starlette_echo.create_app(), "uvicorn-sansio") as url:
        async with client(url + "/ws") as ws:
            assert str(await asyncio.wait_for(ws.recv(), t(2))).startswith("hello ")
            first = str(await asyncio.wait_for(ws.recv(), t(3)))
            second = str(await asyncio.wait_for(ws.recv(), t(3)))
    assert re.fullmatch(r"tick \d+", first)
    assert int(second.split()[1]) == int(first.split()[1]) + 1


async def next_json(ws: ClientConnection, timeout: float) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_chat_is_quiet_about_a_resume_and_announces_a_leave_later() -> None:
    """A dropped chat socket that resumes produces no notice at all (neither for the room nor
    in its own replay); one that does not come back is announced as "left" once its session
    can no longer resume (``session_ttl``); one that closes normally is announced at once."""
    ttl = t(1.0)
    app = chat.create_app(session_ttl=ttl, heartbeat_interval=None)
    async with serve(app, "uvicorn-sansio") as url, client(url + "/ws?name=bob") as bob:
        assert await next_json(bob, t(2)) == {"system": "bob joined", "members": 1}
        alice = await client(url + "/ws?name=alice&_stabilizer=1")
        session = await next_json(alice, t(2))
        assert session["$stabilizer"] == "session"
        assert (await next_json(alice, t(2)))["system"] == "alice joined"
        assert (await next_json(bob, t(2)))["system"] == "alice joined"
        await bob.send("while alice is away")
        await asyncio.sleep(t(0.1))
        alice.transport.abort()  # no close frame: a lost network

        async with client(
            url + f"/ws?name=alice&_stabilizer=1&_stabilizer_token={session['token']}"
            "&_stabilizer_seq=1"
        ) as again:
            frame = await next_json(again, t(2))
            assert frame["resumed"] is True, frame
            assert frame["missed"] == 0
            # The replay holds bob's line and no notice about alice herself.
            assert await next_json(again, t(2)) == {"from": "bob", "text": "while alice is away"}
            assert await next_json(bob, t(2)) == {"from": "bob", "text": "while alice is away"}
            await again.send("back")
            # Bob's next message is alice's line: no "left", no second "joined" in between.
            assert await next_json(bob, t(2)) == {"from": "alice", "text": "back"}
            assert await next_json(again, t(2)) == {"from": "alice", "text": "back"}
            await asyncio.sleep(ttl * 1.2)  # longer than the grace: still nothing announced
            await again.send("still here")
            assert await next_json(bob, t(2)) == {"from": "alice", "text": "still here"}
            dropped = time.monotonic()
            again.transport.abort()  # and this time she does not come back

            notice = await next_json(bob, ttl + t(3))
            assert notice == {"system": "alice left", "code": notice["code"]}
            assert time.monotonic() - dropped >= ttl * 0.9, "announced before the grace"

        async with client(url + "/ws?name=carol&_stabilizer=1") as carol:
            await next_json(carol, t(2))  # the session frame
            assert (await next_json(bob, t(2)))["system"] == "carol joined"
            await carol.close()  # 1000: she leaves for good
            closed = time.monotonic()
        notice = await next_json(bob, t(2))
        assert notice == {"system": "carol left", "code": 1000}
        assert time.monotonic() - closed < ttl * 0.9, "a normal close is announced at once"
