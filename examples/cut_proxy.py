"""A loopback TCP proxy that cuts its connections on demand: see resumption on one machine.

Run the first demo and this proxy from the repository root, in two terminals::

    .venv/bin/python -m uvicorn examples.starlette_echo:app
    .venv/bin/python -m examples.cut_proxy

then open http://127.0.0.1:8001/: the proxy listens on port 8001 and forwards to 8000, so the
page and its WebSocket go through it. Type in the proxy's terminal:

* Enter: cut every connection (a TCP reset, no WebSocket close frame: what a lost network looks
  like to the browser). The page reconnects at once and resumes its session, with what it missed
  replayed.
* ``d`` Enter: cut, then refuse new connections for 5 s (``--outage``): an outage. The page
  retries with backoff; type in it meanwhile, and watch the lines go out once it is back.
* ``q`` Enter (or Ctrl+C): quit.

``--every 10`` also cuts every 10 seconds; ``--listen`` and ``--target`` change the ports. The
proxy only listens on, and connects to, 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading

HOST = "127.0.0.1"


class CutProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``; ``cut()`` resets every proxied
    connection and ``outage(seconds)`` also refuses new ones for a while."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.refuse_until = 0.0
        """Loop time until which new connections are reset at once."""
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` of 127.0.0.1 (0: any free one); returns the port."""
        self._server = await asyncio.start_server(self._accept, HOST, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        """Stop listening and cut everything."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> CutProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def cut(self) -> int:
        """Reset every proxied TCP connection (no close frame); returns how many pairs."""
        writers = list(self._writers)
        self._writers.clear()
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    def outage(self, seconds: float) -> int:
        """Cut, then reset every new connection for ``seconds``; returns how many were cut."""
        self.refuse_until = asyncio.get_running_loop().time() + seconds
        return self.cut()

    @property
    def down(self) -> bool:
        """Whether an outage is going on."""
        return asyncio.get_running_loop().time() < self.refuse_until

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink, other in ((reader, up_writer, writer), (up_reader, writer, up_writer)):
            task = asyncio.create_task(self._pipe(source, sink, other))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
    ) -> None:
        """Copy until end of stream or error, then close both sides of the pair."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        for writer in (sink, other):
            self._writers.discard(writer)
            writer.close()


def _read_commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """Feed stdin's lines to ``queue``, then ``eof`` (in a daemon thread: it never holds the
    exit)."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, "eof")


async def run(listen: int, target: int, outage: float, every: float | None) -> None:
    """Proxy until ``q``, Ctrl+C, or the end of the input (with ``every``: only Ctrl+C)."""
    proxy = CutProxy(target)
    await proxy.start(listen)
    try:
        print(
            f"proxy http://{HOST}:{proxy.port}/ -> {HOST}:{target}\n"
            f"Enter: cut every connection; d Enter: {outage:g} s outage; q Enter: quit",
            flush=True,
        )
        commands: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=_read_commands, args=(loop, commands), daemon=True).start()
        reading = True
        while True:
            try:
                if reading:
                    command = await asyncio.wait_for(commands.get(), every)
                else:
                    assert every is not None
                    await asyncio.sleep(every)
                    command = ""
            except asyncio.TimeoutError:
                command = ""  # --every: time for the next cut
            if command == "q" or (command == "eof" and every is None):
                return
            if command == "eof":
                reading = False  # no more input: go on cutting every few seconds
            elif command == "d":
                print(f"outage: cut {proxy.outage(outage)}, refusing for {outage:g} s", flush=True)
            else:
                print(f"cut {proxy.cut()} connection(s)", flush=True)
    finally:
        await proxy.close()


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", type=int, default=8001, help="port to listen on (8001)")
    parser.add_argument("--target", type=int, default=8000, help="port to forward to (8000)")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds of a 'd' outage (5)")
    parser.add_argument("--every", type=float, default=None, help="also cut every N seconds")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.listen, args.target, args.outage, args.every))


if __name__ == "__main__":
    main()
