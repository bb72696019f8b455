"""The bus entry format: what a send becomes, and what an entry read back holds."""

from __future__ import annotations

import json

import pytest

from asgi_ws_stabilizer.backends.redis_bus import (
    close_args,
    read_entry,
    send_args,
    session_args,
)
from asgi_ws_stabilizer.core.delivery import EVERYONE, Target
from asgi_ws_stabilizer.core.messages import encode


def fields_of(args: list[str | bytes], **extra: bytes) -> dict[bytes, bytes]:
    """The fields PUBLISH would write for ``args`` (header and payload), plus ``extra``."""
    payload = args[4]
    data = payload if isinstance(payload, bytes) else payload.encode()
    out = {b"h": str(args[3]).encode(), b"p": data, b"n": b"node", b"q": b"1"}
    out.update({key.replace("_", ":").encode(): value for key, value in extra.items()})
    return out


def test_a_group_send_round_trips_with_its_exclusions() -> None:
    args = send_args(Target("group", "room"), encode("hi"), frozenset({"c2", "c1"}))
    assert args[:3] == ["group", "room", "c1\nc2"]
    assert args[5] == "t"
    entry = read_entry(fields_of(args))
    assert entry.target == Target("group", "room")
    assert entry.excluded == frozenset({"c1", "c2"})
    assert entry.frame is not None
    assert entry.frame.message["text"] == "hi"
    assert entry.listed == ()


def test_a_binary_broadcast_keeps_its_bytes() -> None:
    args = send_args(EVERYONE, encode(b"\x00\xff"), frozenset())
    assert args[5] == "b"
    entry = read_entry(fields_of(args))
    assert entry.target == EVERYONE
    assert entry.frame is not None
    assert entry.frame.message["bytes"] == b"\x00\xff"
    assert entry.frame.size == 2


def test_only_this_processes_listing_is_read() -> None:
    """``o:<node>`` lists the sessions a process serves with their message numbers; another
    process's field is not this one's."""
    args = send_args(Target("client", "alice"), encode("x"), frozenset())
    fields = fields_of(args, o_mine=b"s1 4,s2 10", o_other=b"s3 1")
    assert read_entry(fields, b"o:mine").listed == (("s1", 4), ("s2", 10))
    assert read_entry(fields, b"o:none").listed == ()


def test_an_app_send_on_a_session_names_its_socket() -> None:
    args = session_args("sid", "conn", encode("mine"))
    assert args[:3] == ["session", "sid", "conn"]
    entry = read_entry(fields_of(args, o_n=b"sid 3"), b"o:n")
    assert entry.target == Target("session", "sid")
    assert entry.listed == (("sid", 3),)


def test_close_and_kick_entries() -> None:
    entry = read_entry(fields_of(close_args("bob", 4000, "bye")))
    assert (entry.target, entry.close, entry.frame) == (
        Target("client", "bob"),
        (4000, "bye"),
        None,
    )
    kick = {b"h": json.dumps(["kick", "conn1", [], "t", 4409, "replaced"]).encode(), b"p": b""}
    entry = read_entry(kick)
    assert (entry.target, entry.close) == (Target("connection", "conn1"), (4409, "replaced"))


def test_an_entry_of_unknown_kind_is_refused() -> None:
    fields = {b"h": json.dumps(["everyone", "", [], "t"]).encode(), b"p": b"x"}
    with pytest.raises(ValueError, match="unknown kind"):
        read_entry(fields)
