"""Every example page in headless Chromium: it loads without a script error, reaches "open",
and shows what the README says it shows when the connection is cut or the server restarts."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import pkgutil
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

import examples
from examples import chat, starlette_echo
from examples.cut_proxy import CutProxy

from ..servers import free_port, serve, wait_for_port
from ..timing import t
from .devtools import Page, chromium, needs_chromium, open_page, websocket_failure

pytestmark = needs_chromium

ROOT = Path(__file__).resolve().parents[2]


def js(value: str) -> str:
    """A JavaScript string literal."""
    return json.dumps(value)


async def type_line(page: Page, text: str, field: str = "msg", button: str = "send") -> None:
    """Type ``text`` into the input ``field`` and press the send button, as a user would."""
    await page.evaluate(
        f"document.getElementById({js(field)}).value = {js(text)};"
        f"document.getElementById({js(button)}).click()"
    )


def line_status(text: str) -> str:
    """Expression: the status class of the echo demo's line ``text`` ('' while not shown)."""
    return (
        "(Array.from(document.querySelectorAll('#lines li'))"
        f".find((li) => li.firstChild.textContent === {js(text)}) || {{}}).className || ''"
    )


def text_is(element_id: str, value: str) -> str:
    """Expression: the element's text equals ``value``."""
    return f"document.getElementById({js(element_id)}).textContent === {js(value)}"


ONLINE = "window.dispatchEvent(new Event('online')), true"
"""Expression: fire the browser's ``online`` event, which makes the client skip the rest of its
backoff delay (a drain's delay is kept)."""


EXAMPLES = sorted(info.name for info in pkgutil.iter_modules(examples.__path__))


@pytest.mark.parametrize("name", EXAMPLES)
async def test_every_example_page_loads_and_opens(name: str) -> None:
    """Each example app that serves a page at ``/`` is loaded as ``uvicorn`` would serve it
    (``examples.<name>:app``): no script error, no console error, no failed load, and its
    ``#state`` reaches "open" (its socket connected and got its session)."""
    app = getattr(importlib.import_module(f"examples.{name}"), "app", None)
    if app is None:
        pytest.skip(f"examples.{name} is not an app")
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app, "uvicorn-sansio"))
        base = url.replace("ws://", "http://")
        async with httpx.AsyncClient(trust_env=False, timeout=t(5)) as http:
            response = await http.get(base + "/")
        if response.status_code != 200 or "html" not in response.headers["content-type"]:
            pytest.skip(f"examples.{name} serves no page at /")
        devtools = await stack.enter_async_context(chromium())
        page = await stack.enter_async_context(open_page(devtools, base + "/"))
        await page.wait_for(text_is("state", "open"), t(10), f"examples.{name}: never open")
        await asyncio.sleep(t(0.3))  # anything the page does right after opening
        page.assert_no_errors()


async def open_echo_demo(page: Page) -> None:
    """Wait for the echo demo to be open, ticking, and echoing."""
    await page.wait_for(text_is("state", "open"), t(10), "the demo page never opened")
    await page.wait_for(
        "/^[0-9]+$/.test(document.getElementById('tick').textContent)", t(5), "no tick arrived"
    )
    await type_line(page, "hello")
    await page.wait_for(f"{line_status('hello')} === 'echoed'", t(5), "'hello' was not echoed")


async def test_echo_demo_resumes_after_a_cut_and_an_outage() -> None:
    """The first demo behind the cut proxy: after a cut it resumes (missed 0, no gap in the
    ticker); a line typed during an outage is shown queued, then sent and echoed once the path
    is back, with the ticks sent meanwhile replayed."""
    app = starlette_echo.create_app()
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app, "uvicorn-sansio"))
        proxy = await stack.enter_async_context(CutProxy(int(url.rsplit(":", 1)[1])))
        devtools = await stack.enter_async_context(chromium())
        page = await stack.enter_async_context(
            open_page(devtools, f"http://127.0.0.1:{proxy.port}/")
        )
        await open_echo_demo(page)
        page.assert_no_errors()

        assert proxy.cut() >= 1
        await page.wait_for(text_is("resumes", "1"), t(10), "no resume after the cut")
        last = await page.text("last")
        match = re.fullmatch(r"resumed, replayed (\d+), missed (\d+)", last)
        assert match is not None, last
        assert int(match[2]) == 0, last
        assert await page.text("reconnects") == "1"
        assert await page.text("fresh") == "0"

        proxy.outage(t(60))  # ended below, by hand
        await page.wait_for(
            "document.getElementById('state').textContent === 'reconnecting'",
            t(10),
            "the page did not notice the outage",
        )
        assert await page.evaluate("!document.getElementById('offline').hidden")
        await type_line(page, "typed while cut off")
        assert await page.evaluate(line_status("typed while cut off")) == "queued"
        ticks_before = int(await page.text("tick"))
        await asyncio.sleep(t(1.5))  # ticks go on meanwhile, into the session's buffer
        proxy.refuse_until = 0.0
        await page.evaluate(ONLINE)
        await page.wait_for(text_is("resumes", "2"), t(10), "no resume after the outage")
        await page.wait_for(
            f"{line_status('typed while cut off')} === 'echoed'",
            t(5),
            "the line typed during the outage was not echoed",
        )
        last = await page.text("last")
        match = re.fullmatch(r"resumed, replayed (\d+), missed (\d+)", last)
        assert match is not None, last
        assert int(match[1]) >= 1, f"ticks sent during the outage were not replayed: {last}"
        assert int(match[2]) == 0, last
        await page.wait_for(
            f"Number(document.getElementById('tick').textContent) > {ticks_before}",
            t(3),
            "the ticker did not go on",
        )
        assert await page.text("gaps") == "0"
        assert "replayed: tick" in await page.text("log")
        assert await page.text("state") == "open"
        page.assert_no_errors(allow=websocket_failure)


@contextlib.contextmanager
def uvicorn_process(module: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``.venv/bin/python -m uvicorn examples.<module>:app --port <port>`` (this interpreter is
    the venv's), as the example's docstring says; stopped with SIGTERM (Ctrl+C's drain), then
    killed if it hangs. Only this process is signalled, by its PID."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS_STABILIZER_")}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", f"examples.{module}:app", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop_process(process, log)


def stop_process(process: subprocess.Popen[bytes], log: IO[bytes] | None = None) -> None:
    """SIGTERM, then SIGKILL after 10 s (both to this PID only)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(t(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if log is not None and process.returncode not in (0, -signal.SIGTERM):
        log.seek(0)
        print(log.read().decode(errors="replace")[-4000:])


@contextlib.asynccontextmanager
async def running(module: str, port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """The example served by its own process on ``port``, ready for connections."""
    with uvicorn_process(module, port) as process:
        await wait_for_port(port, t(20))
        yield process


async def test_echo_demo_after_a_server_restart() -> None:
    """Stop the demo's server (SIGTERM, as Ctrl+C) and start it again on the same port: the page
    reconnects by itself to a new session ("reconnected (new session)", not resumed: sessions
    live in the old process), and the line typed while the server was down goes out."""
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        devtools = await stack.enter_async_context(chromium())
        first = await stack.enter_async_context(running("starlette_echo", port))
        page = await stack.enter_async_context(open_page(devtools, f"http://127.0.0.1:{port}/"))
        await open_echo_demo(page)
        assert "new session" in await page.text("log")
        page.assert_no_errors()

        await asyncio.to_thread(stop_process, first)  # the drain tells the page to come back
        await page.wait_for(
            "document.getElementById('state').textContent === 'reconnecting'",
            t(10),
            "the page did not notice the server stopping",
        )
        assert "closed: code 1012 (server restarting)" in await page.text("log")
        await type_line(page, "typed while the server was down")
        assert await page.evaluate(line_status("typed while the server was down")) == "queued"

        await stack.enter_async_context(running("starlette_echo", port))
        await page.evaluate(ONLINE)
        await page.wait_for(text_is("fresh", "1"), t(15), "the page did not reconnect")
        assert await page.text("last") == "reconnected (new session)"
        assert await page.text("resumes") == "0"
        assert await page.text("reconnects") == "1"
        await page.wait_for(
            f"{line_status('typed while the server was down')} === 'echoed'",
            t(5),
            "the line typed while the server was down was not echoed",
        )
        log = await page.text("log")
        assert "new session (the old one could not be resumed: invalid_token)" in log
        await page.wait_for(text_is("state", "open"), t(2), "not open")
        page.assert_no_errors(allow=websocket_failure)


async def chat_lines(page: Page) -> list[str]:
    """The lines of the chat page's log."""
    return [line for line in (await page.text("log")).splitlines() if line]


async def test_chat_page_two_tabs_and_a_cut() -> None:
    """Two chat tabs: each opens and joins, messages cross; after a cut both resume without any
    "left" or second "joined" notice; a tab that closes is announced as "left" at once."""
    app = chat.create_app()
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(serve(app, "uvicorn-sansio"))
        proxy = await stack.enter_async_context(CutProxy(int(url.rsplit(":", 1)[1])))
        devtools = await stack.enter_async_context(chromium())
        base = f"http://127.0.0.1:{proxy.port}/"
        alice = await stack.enter_async_context(open_page(devtools, base + "?name=alice"))
        await alice.wait_for(text_is("state", "open"), t(10), "alice's page never opened")
        await alice.wait_for(
            "document.getElementById('log').textContent.includes('* alice joined')",
            t(5),
            "alice's join was not shown",
        )
        async with open_page(devtools, base + "?name=bob") as bob:
            await bob.wait_for(text_is("state", "open"), t(10), "bob's page never opened")
            await alice.wait_for(
                "document.getElementById('log').textContent.includes('* bob joined')",
                t(5),
                "alice did not see bob join",
            )
            await type_line(alice, "hi bob", "text", "send")
            await bob.wait_for(
                "document.getElementById('log').textContent.includes('alice: hi bob')",
                t(5),
                "bob did not get alice's message",
            )
            alice.assert_no_errors()
            bob.assert_no_errors()

            assert proxy.cut() >= 2
            for page in (alice, bob):
                await page.wait_for(
                    "document.getElementById('resume').textContent.startsWith('resumed:')",
                    t(10),
                    "a tab did not resume after the cut",
                )
                await page.wait_for(text_is("state", "open"), t(5), "not open again")
            await type_line(alice, "still here", "text", "send")
            await bob.wait_for(
                "document.getElementById('log').textContent.includes('alice: still here')",
                t(5),
                "bob did not get alice's message after the cut",
            )
            for page, joins in ((alice, 2), (bob, 1)):  # bob came after alice's join
                lines = await chat_lines(page)
                assert not [line for line in lines if "left" in line], lines
                assert sum("joined" in line for line in lines) == joins, lines
                assert "0 missed" in await page.text("resume")
            bob.assert_no_errors(allow=websocket_failure)
        # Bob's tab is closed (the browser says 1001, going away): he left for good.
        await alice.wait_for(
            "document.getElementById('log').textContent.includes('* bob left')",
            t(5),
            "bob's leaving was not announced",
        )
        alice.assert_no_errors(allow=websocket_failure)
