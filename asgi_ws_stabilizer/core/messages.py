"""Outbound messages: what the hub accepts and the frame it becomes, encoded once.

A message is ``str`` (a text frame), ``bytes`` (a binary frame) or a ``dict``/``list`` (compact
JSON text, ``separators=(",", ":")``). A broadcast encodes it once and hands the same frame to
every socket.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message

OutboundMessage = str | bytes | bytearray | memoryview | dict[str, Any] | list[Any]


def text_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding it when it is ASCII, the common case)."""
    return len(text) if text.isascii() else len(text.encode())


def payload_size(message: Message) -> int:
    """Bytes of a ``websocket.receive``/``websocket.send`` payload (UTF-8 for text)."""
    text = message.get("text")
    if text is not None:
        return text_size(text)
    data = message.get("bytes")
    return len(data) if data is not None else 0


class Frame:
    """An encoded ``websocket.send`` message and its payload size in bytes."""

    __slots__ = ("message", "size")

    def __init__(self, message: Message, size: int) -> None:
        self.message = message
        self.size = size

    def __repr__(self) -> str:
        kind = "text" if "text" in self.message else "bytes"
        return f"<Frame {kind} {self.size} bytes>"


def encode(message: OutboundMessage) -> Frame:
    """Turn an outbound message into a frame.

    Raises:
        TypeError: ``message`` is none of the accepted types, or its JSON has a value that
            cannot be encoded.
        ValueError: its JSON has NaN or Infinity.
    """
    if isinstance(message, str):
        return Frame({"type": "websocket.send", "text": message}, text_size(message))
    if isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
        return Frame({"type": "websocket.send", "bytes": data}, len(data))
    if isinstance(message, dict | list):
        # allow_nan=False: NaN and Infinity are not JSON, and browsers' JSON.parse rejects them.
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return Frame({"type": "websocket.send", "text": text}, text_size(text))
    raise TypeError(
        f"cannot send a {type(message).__name__}: send str, bytes, or a dict/list for JSON"
    )
