"""EventLog: structured events filtered by ``log_level``, with bound fields."""

from __future__ import annotations

from structlog.testing import capture_logs

from asgi_ws_stabilizer.log import EventLog


def emit_all(log: EventLog) -> None:
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")


def test_level_filters_lower_events() -> None:
    """Events below the minimum level are not emitted."""
    with capture_logs() as logs:
        emit_all(EventLog("WARNING"))
    assert [(e["event"], e["log_level"]) for e in logs] == [("w", "warning"), ("e", "error")]


def test_debug_level_emits_everything() -> None:
    """At DEBUG every event is emitted."""
    with capture_logs() as logs:
        emit_all(EventLog("DEBUG"))
    assert [e["event"] for e in logs] == ["d", "i", "w", "e"]


def test_bind_keeps_level_and_adds_fields() -> None:
    """A bound log adds its fields to every event and keeps the level."""
    with capture_logs() as logs:
        log = EventLog("INFO").bind(connection_id="c1")
        log.debug("hidden")
        log.info("shown", size=3)
    assert logs == [{"event": "shown", "log_level": "info", "connection_id": "c1", "size": 3}]


def test_enabled() -> None:
    """``enabled`` tells whether a numeric level would be emitted."""
    log = EventLog("ERROR")
    assert log.enabled(40)
    assert not log.enabled(30)
