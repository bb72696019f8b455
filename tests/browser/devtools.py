"""Headless Chromium driven over the DevTools protocol with the websockets client (no
chromedriver, no extra package), for the browser tests.

``chromium()`` starts a browser and yields its DevTools port; ``open_page()`` opens a tab, turns
on the Runtime and Log domains *before* navigating (so a syntax error in the page's first script
is seen), and yields a ``Page`` that collects every script error, console error and error log
entry. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from ..timing import t

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI must run the browser tests: .ci/run installs chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (apt-get install chromium); CI installs it"
)
"""Mark for browser tests: skipped where Chromium is missing, never in CI (there it fails)."""


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[int]:
    """A headless Chromium; yields its DevTools port. Stops the process it started."""
    assert CHROMIUM is not None
    profile = tempfile.mkdtemp(prefix="stabilizer-chromium-")
    process = subprocess.Popen(  # noqa: ASYNC220  (starting it does not block)
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-proxy-server", f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        active = Path(profile) / "DevToolsActivePort"
        for _ in range(int(t(20) / 0.05)):
            if active.exists() and active.read_text().strip():
                break
            if process.poll() is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.05)
        else:
            raise TimeoutError("chromium did not open its DevTools port")
        yield int(active.read_text().split()[0])
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 5)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 5)
        shutil.rmtree(profile, ignore_errors=True)


@dataclass(frozen=True)
class PageError:
    """A script exception, a ``console.error`` or an error entry of the browser's log."""

    kind: str
    """``exception``, ``console`` or ``log``."""
    source: str
    """For log entries: ``network``, ``javascript``, ``security``...; else the kind."""
    text: str

    def __str__(self) -> str:
        return f"[{self.kind}/{self.source}] {self.text}"


def websocket_failure(error: PageError) -> bool:
    """Chromium's own log line for a WebSocket that could not connect: expected while a test
    has the server down or the path cut on purpose (not an error of the page)."""
    return error.kind == "log" and error.source == "network" and "WebSocket" in error.text


class Page:
    """One tab, driven over the DevTools protocol; collects the page's errors as they come."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.errors: list[PageError] = []
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._replies.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    self._event(message.get("method", ""), message.get("params", {}))
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ConnectionError("the DevTools connection closed"))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            text = exception.get("description") or details.get("text", "")
            where = f" at {details.get('url', '')}:{details.get('lineNumber', '?')}"
            self.errors.append(PageError("exception", "exception", text + where))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            self.errors.append(PageError("console", "console", text))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                text = f"{entry.get('text', '')} {entry.get('url', '')}".strip()
                self.errors.append(PageError("log", entry.get("source", ""), text))
        elif method == "Page.loadEventFired":
            self._loaded.set()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (raises on a protocol error)."""
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = future
        await self.ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, t(10))
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def text(self, element_id: str) -> str:
        """The text of the element with this id ("" if there is none)."""
        value = await self.evaluate(
            f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent || ''"
        )
        return str(value)

    async def wait_for(
        self, expression: str, timeout: float, what: str, *, check_errors: bool = True
    ) -> Any:
        """Poll ``expression`` until it is truthy, for at most ``timeout`` seconds; fails with
        ``what`` (and the page's errors) when it never is. Fails early on a script error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if check_errors:
                self.assert_no_errors(allow=websocket_failure)
            if loop.time() > deadline:
                raise AssertionError(f"{what}: not within {timeout:.1f}s; errors {self.errors}")
            await asyncio.sleep(0.05)

    async def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self._loaded.clear()
        result = await self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise AssertionError(f"{url} did not load: {result['errorText']}")
        await asyncio.wait_for(self._loaded.wait(), t(10))

    def assert_no_errors(self, allow: Callable[[PageError], bool] | None = None) -> None:
        """Fail on any error the page produced so far (but those ``allow`` accepts)."""
        errors = [e for e in self.errors if allow is None or not allow(e)]
        assert not errors, "the page had errors:\n" + "\n".join(map(str, errors))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def open_page(devtools: int, url: str | None = None) -> AsyncIterator[Page]:
    """A new tab with error collection on; loads ``url`` (if given) once collection is on."""
    base = f"http://127.0.0.1:{devtools}"
    async with httpx.AsyncClient(trust_env=False, timeout=t(10)) as http:
        target = (await http.put(f"{base}/json/new?about:blank")).json()
    try:
        async with connect(
            target["webSocketDebuggerUrl"], proxy=None, max_size=None, open_timeout=t(10)
        ) as ws:
            page = Page(ws)
            try:
                for domain in ("Runtime", "Log", "Page"):
                    await page.call(f"{domain}.enable")
                if url is not None:
                    await page.navigate(url)
                yield page
            finally:
                await page.close()
    finally:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(trust_env=False, timeout=t(5)) as http:
                await http.get(f"{base}/json/close/{target['id']}")
