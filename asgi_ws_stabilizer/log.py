"""Structured events, filtered by ``log_level``.

The logger is ``structlog.get_logger("asgi_ws_stabilizer")``; structlog is never configured here,
that is the application's choice. Values always go out as fields, never pasted into the event
text, so a client-chosen id cannot forge a log line. There is never an event per message.
"""

from __future__ import annotations

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


class EventLog:
    """A named structlog logger with its own minimum level and fields added to every event.

    ``bind`` keeps the fields here and passes them with each event instead of binding a
    structlog logger: a connection logs two or three events in its life, and a bound logger
    kept for each of thousands of idle sockets would cost more than those events.
    """

    __slots__ = ("_fields", "_logger", "_min")

    def __init__(
        self, level: str | int = "INFO", logger: Any = None, fields: dict[str, Any] | None = None
    ) -> None:
        self._min: int = LEVELS[level] if isinstance(level, str) else level
        self._logger = logger if logger is not None else structlog.get_logger(LOGGER_NAME)
        self._fields = fields or {}

    def bind(self, **fields: Any) -> EventLog:
        """A log that adds ``fields`` to every event."""
        return EventLog(self._min, self._logger, {**self._fields, **fields})

    def enabled(self, level: int) -> bool:
        """Whether events at ``level`` are emitted."""
        return level >= self._min

    def debug(self, event: str, **fields: Any) -> None:
        """An event at DEBUG level."""
        if self._min <= logging.DEBUG:
            self._logger.debug(event, **self._fields, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """An event at INFO level."""
        if self._min <= logging.INFO:
            self._logger.info(event, **self._fields, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """An event at WARNING level."""
        if self._min <= logging.WARNING:
            self._logger.warning(event, **self._fields, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """An event at ERROR level (pass ``exc_info`` for a traceback)."""
        if self._min <= logging.ERROR:
            self._logger.error(event, **self._fields, **fields)
