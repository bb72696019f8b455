"""Resumable clients of the cluster app: one session carried over sockets on any worker.

A ``Resumer`` opts in with ``_stabilizer=1``, keeps every control frame (``session``, ``drain``)
apart from the data messages, and counts the data messages as the wire contract says: every
text or binary frame that is neither a control frame (a JSON object with ``"$stabilizer"``) nor
the heartbeat ``ping``, the app's own sends (its ``ready`` frame, its answers) included. It
can drop its connection abruptly (no close frame), stop counting a socket left open (half-open,
as the client sees it), and resume on any worker with its latest token and its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..timing import t
from .listeners import close_reading, open_ws
from .waits import eventually
from .workers import Worker

CONTROL = "$stabilizer"


def json_object(frame: str) -> dict[str, Any] | None:
    """The JSON object ``frame`` holds, or ``None``."""
    if not frame.startswith("{"):
        return None
    try:
        value = json.loads(frame)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def control(frame: str) -> dict[str, Any] | None:
    """The control frame ``frame`` is (a JSON object with ``"$stabilizer"``), or ``None``."""
    value = json_object(frame)
    return value if value is not None and CONTROL in value else None


def app_frame(frame: str) -> dict[str, Any] | None:
    """The app's own JSON object frame (``ready``, ``set``, ``joined``), or ``None``."""
    return json_object(frame)


def label(frame: str) -> str:
    """A data frame, readable in a comparison: the app's JSON answers become ``<ready>``,
    ``<set K>``, ``<joined G>``; anything else stays as it is."""
    value = app_frame(frame)
    if value is None:
        return frame
    if "ready" in value:
        return "<ready>"
    for verb in ("set", "joined", "left"):
        if verb in value:
            return f"<{verb} {value[verb]}>"
    return frame


@dataclass(eq=False)
class Socket:
    """One connection of a resumable client: its session frame and what came after it."""

    worker: Worker
    ws: ClientConnection
    session: dict[str, Any]
    """The ``session`` control frame, the first frame of the socket."""
    frames: list[str] = field(default_factory=list)
    """Every data frame the socket brought, in order (counted or not)."""
    controls: list[dict[str, Any]] = field(default_factory=list)
    """Control frames after the session frame (``drain``)."""
    counted: int | None = None
    """``None`` while the client counts what this socket brings; then how many it counted."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    closed_at: float | None = None
    """Loop time at which the socket was seen closed."""
    close_code: int | None = None
    close_reason: str = ""
    task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        sid = str(self.session.get("session_id", "?"))[:8]
        return (
            f"<Socket {sid} on {self.worker.name} data={len(self.frames)} code={self.close_code}>"
        )

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    self.frames.append(frame.decode(errors="replace"))
                    continue
                if frame == "ping":  # the text heartbeat: not data
                    if self.counted is None:
                        with contextlib.suppress(ConnectionClosed):
                            await self.ws.send("pong")
                    continue
                value = control(frame)
                if value is not None:
                    self.controls.append(value)
                else:
                    self.frames.append(frame)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed_at = asyncio.get_running_loop().time()
            self.closed.set()

    @property
    def open(self) -> bool:
        return not self.closed.is_set()

    @property
    def received(self) -> list[str]:
        """The data frames the client counts from this socket."""
        return self.frames if self.counted is None else self.frames[: self.counted]

    @property
    def token(self) -> str:
        """The latest token this socket brought (session frame, or a later drain frame)."""
        tokens = [c["token"] for c in [self.session, *self.controls] if "token" in c]
        return str(tokens[-1])

    def stop_counting(self) -> None:
        """The client takes nothing more from this socket (it may stay open: half-open)."""
        if self.counted is None:
            self.counted = len(self.frames)

    def abort(self) -> None:
        """Drop the TCP connection at once: no close frame, nothing more counted."""
        self.stop_counting()
        self.ws.transport.abort()

    async def ready(self) -> dict[str, Any]:
        """This socket's own ``ready`` frame: the first one after the replayed messages."""
        replayed = int(self.session.get("replayed", 0))
        found: dict[str, Any] = {}

        async def check() -> None:
            for frame in self.frames[replayed:]:
                value = app_frame(frame)
                if value is not None and "ready" in value:
                    found.update(value)
                    return
            raise AssertionError(f"{self!r}: no ready frame yet, frames {self.frames[-5:]}")

        await eventually(check, t(5))
        return found

    async def command(self, text: str, answer: dict[str, str]) -> None:
        """Send ``set K V`` or ``join G``; wait for the app's answer (a data frame, counted)."""
        seen = len(self.frames)
        await self.ws.send(text)

        async def check() -> None:
            assert any(app_frame(f) == answer for f in self.frames[seen:]), (
                f"{self!r}: no answer {answer} to {text!r}"
            )

        await eventually(check, t(3))

    async def close(self) -> None:
        """Close from the client side (bounded) and stop reading."""
        await close_reading(self.ws, self.task)


_made: list[Socket] = []
"""Every socket opened since the last ``close_every_socket``."""


async def open_socket(worker: Worker, query: dict[str, str]) -> Socket:
    """Connect to ``worker``'s ``/ws`` with ``query``; return once the session frame came."""
    ws, first = await open_ws(worker, query)
    session = control(first) if isinstance(first, str) else None
    if session is None or session[CONTROL] != "session":
        await ws.close()
        raise AssertionError(f"{worker.name}: the first frame is not a session frame: {first!r}")
    socket = Socket(worker, ws, session)
    socket.task = asyncio.create_task(socket._read())
    _made.append(socket)
    return socket


def resume_query(token: str, seq: int) -> dict[str, str]:
    """The query of a resume: ``_stabilizer=1&_stabilizer_token=…&_stabilizer_seq=…``."""
    return {"_stabilizer": "1", "_stabilizer_token": token, "_stabilizer_seq": str(seq)}


@dataclass(eq=False)
class Resumer:
    """A client and its session, over as many sockets as it took (the latest last)."""

    name: str
    sockets: list[Socket] = field(default_factory=list)
    start: int = 0
    """Index in ``sockets`` of the first socket of the current session (a refused resume
    starts a fresh one)."""

    def __repr__(self) -> str:
        where = self.sockets[-1].worker.name if self.sockets else "-"
        return f"<Resumer {self.name} on {where} count={self.count}>"

    @classmethod
    async def connect(cls, worker: Worker, client_id: str, groups: Iterable[str] = ()) -> Resumer:
        """A new session on ``worker`` as ``client_id`` in ``groups``."""
        query = {"_stabilizer": "1", "client_id": client_id, "groups": ",".join(groups)}
        resumer = cls(client_id)
        resumer.sockets.append(await open_socket(worker, query))
        return resumer

    @property
    def socket(self) -> Socket:
        return self.sockets[-1]

    @property
    def session_sockets(self) -> list[Socket]:
        return self.sockets[self.start :]

    @property
    def data(self) -> list[str]:
        """The data messages the client counts in its current session, in order."""
        return [frame for s in self.session_sockets for frame in s.received]

    @property
    def labels(self) -> list[str]:
        return [label(frame) for frame in self.data]

    @property
    def count(self) -> int:
        return len(self.data)

    @property
    def token(self) -> str:
        """The latest token of the current session."""
        return self.session_sockets[-1].token

    def drop(self) -> None:
        """Drop the current socket abruptly (its server sees the TCP connection end)."""
        self.socket.abort()

    async def resume(self, worker: Worker) -> Socket:
        """Resume on ``worker`` with the latest token and the count; the current socket, if
        still open, counts nothing more (it is left open: half-open)."""
        self.socket.stop_counting()
        socket = await open_socket(worker, resume_query(self.token, self.count))
        self.sockets.append(socket)
        if not socket.session.get("resumed"):
            self.start = len(self.sockets) - 1
        return socket


async def connect_all(
    specs: Sequence[tuple[Worker, str, Iterable[str]]], at_once: int = 50
) -> list[Resumer]:
    """``Resumer.connect`` for each ``(worker, client_id, groups)``, ``at_once`` at a time;
    returns once each socket's ``ready`` frame came."""
    gate = asyncio.Semaphore(at_once)

    async def one(worker: Worker, client_id: str, groups: Iterable[str]) -> Resumer:
        async with gate:
            resumer = await Resumer.connect(worker, client_id, groups)
            await resumer.socket.ready()
            return resumer

    return list(await asyncio.gather(*(one(*spec) for spec in specs)))


async def resume_all(pairs: Sequence[tuple[Resumer, Worker]], at_once: int = 50) -> list[Socket]:
    """``resume`` each resumer on its worker, ``at_once`` at a time."""
    gate = asyncio.Semaphore(at_once)

    async def one(resumer: Resumer, worker: Worker) -> Socket:
        async with gate:
            return await resumer.resume(worker)

    return list(await asyncio.gather(*(one(*pair) for pair in pairs)))


async def wait_data(
    resumers: Iterable[Resumer],
    done: Callable[[Resumer], bool],
    what: str,
    within: float,
) -> None:
    """Wait (bounded) until ``done(r)`` holds for every resumer."""
    resumers = list(resumers)

    async def check() -> None:
        late = [r for r in resumers if not done(r)]
        assert not late, (
            f"{what}: {len(late)} of {len(resumers)} clients still wait, e.g. {late[0]!r} "
            f"whose last frames are {late[0].labels[-5:]}"
        )

    await eventually(check, within, interval=0.05)


async def wait_last(resumers: Iterable[Resumer], last: str, within: float) -> None:
    """Wait until the last data message of every resumer is ``last``."""
    await wait_data(resumers, lambda r: r.labels[-1:] == [last], f"last frame {last!r}", within)


async def close_every_socket() -> None:
    """Close every socket opened since the last call (the tests' teardown)."""
    made = list(_made)
    _made.clear()
    await asyncio.gather(*(socket.close() for socket in made))
