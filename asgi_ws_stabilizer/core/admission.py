"""Admission: which handshakes are let through, decided before the app is ever called.

``Admission.check`` is synchronous and runs with no ``await`` between the check and the
registration, so concurrent handshakes cannot overshoot a limit. ``aio/denial.py`` sends the
refusal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..config.origins import normalise_origin, same_origin
from ..config.settings import StabilizerSettings
from ..errors import InvalidClientIdError

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~:@-]{1,128}")
"""What a client id may look like: URL-safe characters, at most 128 of them."""

BAD_CLIENT_ID = "malformed client id: use 1-128 characters of A-Z a-z 0-9 . _ ~ : @ -"


def check_client_id(client_id: object) -> str:
    """``client_id`` if it is a usable client id.

    Raises:
        InvalidClientIdError: not a string of 1-128 URL-safe characters.
    """
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise InvalidClientIdError(f"{BAD_CLIENT_ID}, got {client_id!r:.80}")
    return client_id


SEQ_PATTERN = re.compile(r"[0-9]{1,20}")
"""What ``_stabilizer_seq`` may look like: ASCII digits only (``str.isdigit`` also accepts
``²`` and other scripts' digits, which ``int`` refuses), and short enough for ``int`` to parse
cheaply: 20 digits are more messages than any session will ever send."""


def parse_seq(text: str | None) -> int | None:
    """``_stabilizer_seq`` as a number, or ``None`` when absent or malformed."""
    if text is None or not SEQ_PATTERN.fullmatch(text):
        return None
    return int(text)


REFUSAL_REASONS = (
    "draining",
    "origin_not_allowed",
    "bad_client_id",
    "bad_resume_seq",
    "ip_limit",
    "client_limit",
    "server_full",
    "backend_unavailable",
)
"""Every ``Refusal.reason`` (the metrics' ``reason`` label takes these and ``other``)."""


@dataclass(frozen=True)
class Refusal:
    """Why a handshake was refused, and how to tell the client."""

    status: int
    reason: str
    """Machine-readable: one of ``REFUSAL_REASONS``."""
    detail: str
    retry_after: int | None = None


@dataclass(slots=True)
class Handshake:
    """The parts of a WebSocket scope that admission looks at (one per handshake: not frozen,
    as a frozen dataclass sets each field through ``object.__setattr__``)."""

    origin: str | None
    host: str | None
    client_id: str | None
    remote_ip: str
    opted_in: bool = False
    """``_stabilizer=1``: the client takes control frames and may resume."""
    token: str | None = None
    """``_stabilizer_token``: the resume token it holds."""
    received: str | None = None
    """``_stabilizer_seq``: how many data messages it received in that session (unparsed;
    ``seq`` is the parsed value)."""

    @property
    def seq(self) -> int | None:
        """``_stabilizer_seq`` as a number; ``None`` when absent or malformed."""
        return None if self.received is None else parse_seq(self.received)

    @property
    def resuming(self) -> bool:
        """Whether the client asks to resume: opted in, with a token and a well-formed seq."""
        return self.opted_in and self.token is not None and self.seq is not None

    @classmethod
    def from_scope(cls, scope: Any, client_id_param: str | None) -> Handshake:
        """Read the Origin and Host headers, the client id parameter and the peer address."""
        origin = host = None
        for name, value in scope.get("headers") or ():
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"host":
                host = value.decode("latin-1")
        params: dict[str, str] = {}
        query = scope.get("query_string")
        if query:  # most handshakes have none: no parse
            for key, value in parse_qsl(query.decode("latin-1"), True):
                params.setdefault(key, value)  # the first occurrence counts
        client_id = params.get(client_id_param) if client_id_param else None
        client = scope.get("client")
        remote_ip = str(client[0]) if client else "unknown"
        return cls(
            origin=origin,
            host=host,
            client_id=client_id,
            remote_ip=remote_ip,
            opted_in=params.get("_stabilizer") == "1",
            token=params.get("_stabilizer_token"),
            received=params.get("_stabilizer_seq"),
        )


class Admission:
    """The admission rules of one hub."""

    def __init__(self, settings: StabilizerSettings) -> None:
        self.settings = settings
        origins = settings.allowed_origins
        self._any_origin = origins is not None and "*" in origins
        # Normalised once, by the settings: "*", "null" or scheme://host[:port].
        self._origins = None if origins is None else set(origins) - {"*"}

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Origin policy: no Origin header is allowed (non-browser clients send none)."""
        if origin is None or self._any_origin:
            return True
        if self._origins is None:
            return same_origin(origin, host)
        if origin.strip().lower() == "null":
            return "null" in self._origins
        normalised = normalise_origin(origin)
        return normalised is not None and normalised in self._origins

    def check(
        self,
        handshake: Handshake,
        *,
        total: int,
        per_ip: int,
        per_client: int,
        draining: bool,
    ) -> Refusal | None:
        """The refusal for this handshake, or ``None`` to admit it.

        ``total``, ``per_ip`` and ``per_client`` are the counts before this connection.
        """
        s = self.settings
        if draining:
            return Refusal(503, "draining", "server is draining", s.retry_after)
        if not self.origin_allowed(handshake.origin, handshake.host):
            return Refusal(403, "origin_not_allowed", "origin not allowed")
        if handshake.client_id is not None and not CLIENT_ID_PATTERN.fullmatch(handshake.client_id):
            return Refusal(400, "bad_client_id", BAD_CLIENT_ID)
        if (handshake.received is not None or handshake.token is not None) and (
            handshake.seq is None
        ):
            return Refusal(
                400,
                "bad_resume_seq",
                "_stabilizer_seq must be the number of data messages received: "
                "1 to 20 ASCII digits, and is required with _stabilizer_token",
            )
        if s.max_connections_per_ip is not None and per_ip >= s.max_connections_per_ip:
            return Refusal(429, "ip_limit", "too many connections from this address", s.retry_after)
        if s.max_connections_per_client is not None and per_client >= s.max_connections_per_client:
            return self.client_limit()
        if s.max_connections is not None and total >= s.max_connections:
            return Refusal(503, "server_full", "server is at its connection limit", s.retry_after)
        return None

    def backend_unavailable(self, detail: str) -> Refusal:
        """The refusal for a resumable socket while the broker that keeps sessions is away."""
        return Refusal(503, "backend_unavailable", detail, self.settings.retry_after)

    def client_limit(self) -> Refusal:
        """The refusal for a client id over ``max_connections_per_client``."""
        return Refusal(
            429,
            "client_limit",
            "too many connections for this client id",
            self.settings.retry_after,
        )
