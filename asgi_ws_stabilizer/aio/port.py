"""The narrow interface between one connection and the process-wide side.

A connection never reaches into the hub: what it needs (the settings and the meter, a place to
report events, the heartbeat timer and the lag-adjusted clock, the reader watch, and the moments
of its life that the hub acts on) is this ``HubPort``, which the hub's services implement
(hub/services.py). It is generic in the connection type so that this module need not import the
connection, and the connection need not import the hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from starlette.types import Message

from ..config.settings import StabilizerSettings
from ..core.inbound import InboundRules
from ..core.memory import Meter
from ..observe.events import Events
from ..observe.log import EventLog
from .readers import ReaderWatch

C = TypeVar("C", contravariant=True)


@dataclass(frozen=True)
class HeartbeatTexts:
    """The heartbeat's ping and pong frames, made once per hub."""

    ping: Message
    pong: Message
    pong_size: int


class HubPort(Protocol[C]):
    """What a connection of type ``C`` needs of the hub."""

    @property
    def settings(self) -> StabilizerSettings: ...
    @property
    def meter(self) -> Meter: ...
    @property
    def events(self) -> Events: ...
    @property
    def log(self) -> EventLog: ...
    @property
    def texts(self) -> HeartbeatTexts: ...
    @property
    def readers(self) -> ReaderWatch: ...
    @property
    def rules(self) -> InboundRules: ...

    def clock_now(self) -> float:
        """Seconds on the lag-adjusted clock that heartbeat deadlines use."""
        ...

    def clock_at(self, loop_time: float) -> float:
        """``loop_time`` (the loop's clock) on the lag-adjusted clock."""
        ...

    def watch(self, connection: C, deadline: float) -> None:
        """Look at ``connection``'s heartbeat at ``deadline`` (lag-adjusted clock)."""
        ...

    def opened(self, connection: C) -> Sequence[Message]:
        """``connection`` was accepted: report it, and return the frames that go out first (an
        opted-in socket's session frame and replay, cut now)."""
        ...

    async def send_shared(self, connection: C, message: Message, size: int) -> None:
        """The app's own send on a socket whose session the broker keeps: logged there, then
        written to the socket in the log's order."""
        ...

    async def connected(self, connection: C) -> None:
        """Run the app's ``on_connect`` hook (right after accept)."""
        ...

    def grew(self) -> None:
        """Memory held for connections grew: enforce ``max_total_memory``."""
        ...

    def finished(self, connection: C) -> None:
        """``connection`` ended: unregister it, keep its session for a resume, report it."""
        ...
