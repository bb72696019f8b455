"""Structured events, filtered by ``log_level``.

The logger is ``structlog.get_logger("asgi_ws_stabilizer")``; structlog is never configured here,
that is the application's choice. Values always go out as fields, never pasted into the event
text, and every field value is made safe here, whatever renderer the application uses:

* Strings with a non-printable character (C0 and C1 controls, DEL, U+2028/U+2029, ...) get
  each such character replaced by its Python escape (``\\x1b``, ``\\x85``, ``\\u2028``), with
  no quotes added. Client-chosen values (a client id, an Origin, a path, a close reason) are
  logged, and structlog's console renderer quotes only strings with spaces, ``=``, CR, LF or
  quotes: an ESC sequence or a NEL would otherwise reach the terminal or the log file raw and
  forge or erase lines.
* Enum members (``CloseCode`` and the like) become their plain value, so ``code=1012`` is
  logged, not ``code=<CloseCode.SERVICE_RESTART: 1012>``.
* Bytes become text, and lists, tuples, sets and dicts are cleaned item by item (a few levels
  deep).

There is never an event per message.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import structlog

LOGGER_NAME = "asgi_ws_stabilizer"

LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

_METHODS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}
"""The logger's method for a level (``EventLog.at``); anything higher is ``error``."""

_PLAIN: frozenset[type] = frozenset({int, float, bool, type(None)})
"""Exact types that go out untouched: they render the same in every renderer."""

_MAX_DEPTH = 3
"""How deep containers are cleaned; what lies deeper is treated as an opaque object."""


def _escape(text: str) -> str:
    """``text`` with each non-printable character replaced by its Python escape.

    ``repr`` of one character escapes exactly the characters ``str.isprintable`` rejects, so
    this gives ``\\x1b``, ``\\x85``, ``\\u2028``, ``\\n`` and the like; printable characters,
    non-ASCII letters included, are kept as they are. Backslashes are not doubled: a printable
    value must go out untouched, and the point is that no control character reaches a log line
    raw, not that the line can be decoded back.
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _clean(value: Any, depth: int = 0) -> Any:
    """``value`` made safe for any renderer (see the module docstring)."""
    cls = type(value)
    if cls is str:
        return value if value.isprintable() else _escape(value)
    if cls in _PLAIN:
        return value
    # Before the str and int checks: str and int enums are instances of those too.
    if isinstance(value, enum.Enum):
        return _clean(value.value, depth + 1)
    if isinstance(value, str):
        return _clean(str.__str__(value), depth)
    # A subclass could render itself any way it likes: the plain number cannot.
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _escape(bytes(value).decode("utf-8", "backslashreplace"))
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {_clean(k, depth + 1): _clean(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [_clean(item, depth + 1) for item in value]
        if isinstance(value, tuple):
            return tuple(_clean(item, depth + 1) for item in value)
        if isinstance(value, frozenset):
            # A frozenset stays one: it may be an item of a set or a key of a dict.
            return frozenset(_clean(item, depth + 1) for item in value)
        if isinstance(value, set):
            return {_clean(item, depth + 1) for item in value}
    # Anything else renders through repr() (console, key-value) or a repr fallback (JSON):
    # kept as is when that is printable, else replaced by the escaped repr.
    text = repr(value)
    return value if text.isprintable() else _escape(text)


def _cleaned(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` (a dict this module owns) with every value made safe, changed in place.

    The usual event holds printable strings and plain numbers only: the first loop finds that
    with one type check per value and one ``isprintable`` per string, and returns without
    allocating. ``exc_info`` is left to the renderer.
    """
    for value in fields.values():
        cls = type(value)
        if cls is str:
            if not value.isprintable():
                break
        elif cls not in _PLAIN:
            break
    else:
        return fields
    for key, value in fields.items():
        if key != "exc_info":
            # Replacing the value of an existing key does not disturb the iteration.
            fields[key] = _clean(value)
    return fields


class EventLog:
    """A named structlog logger with its own minimum level and fields added to every event.

    ``bind`` keeps the fields here and passes them with each event instead of binding a
    structlog logger: a connection logs two or three events in its life, and a bound logger
    kept for each of thousands of idle sockets would cost more than those events.

    Every field value, bound or passed with an event, is made safe to render (see the module
    docstring); the event name is ours and goes out as given.
    """

    __slots__ = ("_fields", "_logger", "_min", "debugging")

    def __init__(
        self, level: str | int = "INFO", logger: Any = None, fields: dict[str, Any] | None = None
    ) -> None:
        self._min: int = LEVELS[level] if isinstance(level, str) else level
        self.debugging = self._min <= logging.DEBUG
        """Whether DEBUG events are emitted (``enabled(DEBUG)``, read where a call would
        cost more than the check)."""
        self._logger = logger if logger is not None else structlog.get_logger(LOGGER_NAME)
        # A copy: the caller's dict is not ours to change.
        self._fields: dict[str, Any] = _cleaned(dict(fields)) if fields else {}

    def bind(self, **fields: Any) -> EventLog:
        """A log that adds ``fields`` to every event."""
        return EventLog(self._min, self._logger, {**self._fields, **fields})

    def enabled(self, level: int) -> bool:
        """Whether events at ``level`` are emitted."""
        return level >= self._min

    def at(self, level: int, event: str, **fields: Any) -> None:
        """An event at ``level`` (DEBUG, INFO, WARNING or ERROR)."""
        if level >= self._min:
            method = _METHODS.get(level, "error")
            getattr(self._logger, method)(event, **self._fields, **_cleaned(fields))

    def debug(self, event: str, **fields: Any) -> None:
        """An event at DEBUG level."""
        if self._min <= logging.DEBUG:
            self._logger.debug(event, **self._fields, **_cleaned(fields))

    def info(self, event: str, **fields: Any) -> None:
        """An event at INFO level."""
        if self._min <= logging.INFO:
            self._logger.info(event, **self._fields, **_cleaned(fields))

    def warning(self, event: str, **fields: Any) -> None:
        """An event at WARNING level."""
        if self._min <= logging.WARNING:
            self._logger.warning(event, **self._fields, **_cleaned(fields))

    def error(self, event: str, **fields: Any) -> None:
        """An event at ERROR level (pass ``exc_info`` for a traceback)."""
        if self._min <= logging.ERROR:
            self._logger.error(event, **self._fields, **_cleaned(fields))
