"""Who keeps plain clients alive: the server's protocol keepalive, looked at on start-up.

With ``heartbeat_clients="opted_in"`` (the default) a client that did not opt in gets no text
heartbeat: it may not know the text ``ping`` (one that parses every message as JSON would
throw), so the server's own protocol-level PING frames, which browsers and client libraries
answer without any code and which ASGI never shows, keep its proxies fed and find it dead.
uvicorn sends them every ``--ws-ping-interval`` and closes a peer that does not answer within
``--ws-ping-timeout``; hypercorn sends them every ``websocket_ping_interval`` but never checks
for an answer, so a dead peer is found only when the kernel gives up retransmitting to it.

ASGI does not say which server runs the app, nor how it is set up. ``find_keepalive`` looks
where it can: uvicorn installs its ``Server.handle_exit`` as the SIGTERM handler (its config
hangs off it), hypercorn a loop signal handler of its own. ``advice`` turns what was found into
a warning, or ``None`` when plain clients are watched.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Keepalive:
    """The server's protocol keepalive, as far as it could be found."""

    server: str
    """``uvicorn``, ``hypercorn`` or ``unknown``."""
    interval: float | None = None
    """Seconds between protocol pings (uvicorn), ``None`` when off or unknown."""
    timeout: float | None = None
    """Seconds to wait for the answer (uvicorn), ``None`` when it never judges or unknown."""


def find_keepalive(loop: asyncio.AbstractEventLoop | None = None) -> Keepalive:
    """Look at the process's SIGTERM handlers for the server and its keepalive settings."""
    handler: Any = signal.getsignal(signal.SIGTERM)
    owner = getattr(handler, "__self__", None)
    config = getattr(owner, "config", None)
    if config is not None and type(owner).__module__.startswith("uvicorn"):
        return Keepalive(
            "uvicorn",
            getattr(config, "ws_ping_interval", None) or None,
            getattr(config, "ws_ping_timeout", None) or None,
        )
    handlers: dict[int, Any] = getattr(loop, "_signal_handlers", None) or {}
    handle = handlers.get(signal.SIGTERM)
    callback = getattr(handle, "_callback", handler)  # a loop handler, else the plain one
    if (getattr(callback, "__module__", None) or "").startswith("hypercorn"):
        return Keepalive("hypercorn")
    return Keepalive("unknown")


def advice(keepalive: Keepalive) -> str | None:
    """Why plain clients would have no liveness check, and what to set; ``None`` if they have."""
    if keepalive.server == "uvicorn":
        if keepalive.interval is None or keepalive.timeout is None:
            return (
                "uvicorn's protocol keepalive is off (--ws-ping-interval / --ws-ping-timeout): "
                "a plain client that vanishes is never found; set both (the defaults are 20 s), "
                "or WS_STABILIZER_HEARTBEAT_CLIENTS=all if every client answers the text ping"
            )
        return None
    if keepalive.server == "hypercorn":
        return (
            "hypercorn sends protocol pings (websocket_ping_interval) but never checks for an "
            "answer: a plain client that vanishes is found only when the kernel stops "
            "retransmitting to it (net.ipv4.tcp_retries2: about 15 min by default); set "
            "WS_STABILIZER_HEARTBEAT_CLIENTS=all if every client answers the text ping, or "
            "put a proxy with an idle timeout in front"
        )
    return None
