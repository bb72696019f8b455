"""Outbound messages: str, bytes and JSON encoded once into a frame with its payload size."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asgi_ws_stabilizer.core.messages import Frame, encode


@pytest.mark.parametrize(("text", "size"), [("hello", 5), ("héllo", 6), ("€", 3), ("", 0)])
def test_str_is_a_text_frame_sized_in_utf8_bytes(text: str, size: int) -> None:
    """A ``str`` becomes a text frame; its size is the UTF-8 byte length, not the char count."""
    frame = encode(text)
    assert frame.message == {"type": "websocket.send", "text": text}
    assert frame.size == size


@pytest.mark.parametrize("data", [b"\x00\xff", bytearray(b"\x00\xff"), memoryview(b"\x00\xff")])
def test_binary_is_a_bytes_frame(data: bytes | bytearray | memoryview) -> None:
    """``bytes``, ``bytearray`` and ``memoryview`` become a binary frame carrying real ``bytes``."""
    frame = encode(data)
    assert frame.message == {"type": "websocket.send", "bytes": b"\x00\xff"}
    assert type(frame.message["bytes"]) is bytes
    assert frame.size == 2


def test_bytearray_is_copied_when_encoded() -> None:
    """A ``bytearray`` changed after encoding does not change the frame already queued."""
    data = bytearray(b"abc")
    frame = encode(data)
    data[0] = ord("z")
    assert frame.message["bytes"] == b"abc"


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"a": 1, "b": [True, None]}, '{"a":1,"b":[true,null]}'),
        ([1, "two", {"x": 1.5}], '[1,"two",{"x":1.5}]'),
        ({"name": "zoë"}, '{"name":"zoë"}'),
        ({}, "{}"),
    ],
)
def test_dict_and_list_are_compact_json_text(message: Any, text: str) -> None:
    """A dict or list becomes compact JSON text (no spaces, UTF-8 kept), sized in bytes."""
    frame = encode(message)
    assert frame.message == {"type": "websocket.send", "text": text}
    assert frame.size == len(text.encode())
    assert json.loads(frame.message["text"]) == message


@pytest.mark.parametrize("message", [7, 1.5, None, ("a", "b"), {"a"}, object()])
def test_other_types_are_refused_with_a_type_error(message: Any) -> None:
    """Anything but str, bytes-like, dict or list raises ``TypeError`` naming the type."""
    with pytest.raises(TypeError, match=f"cannot send a {type(message).__name__}: send str"):
        encode(message)


def test_json_with_an_unencodable_value_raises_type_error() -> None:
    """A dict holding a value JSON cannot express raises ``TypeError``."""
    with pytest.raises(TypeError):
        encode({"when": object()})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_json_never_contains_nan_or_infinity(value: float) -> None:
    """A float JSON cannot express is refused rather than sent as invalid JSON."""
    with pytest.raises((TypeError, ValueError)):
        encode({"x": value})


def test_frame_repr_names_kind_and_size() -> None:
    """A frame's repr says whether it is text or bytes and how big, never the payload."""
    assert repr(encode("secret")) == "<Frame text 6 bytes>"
    assert repr(encode(b"secret")) == "<Frame bytes 6 bytes>"
    assert isinstance(encode("x"), Frame)
