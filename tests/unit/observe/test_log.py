"""EventLog: structured events filtered by ``log_level``, with bound fields, made safe to render."""

from __future__ import annotations

import enum
import json
from typing import Any

import pytest
import structlog
from structlog.testing import CapturingLogger, capture_logs

from asgi_ws_stabilizer.codes import CloseCode
from asgi_ws_stabilizer.observe.log import EventLog


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


# -- hostile values: escaped at the one choke point, whatever renderer the app uses ----------

FORGED = "\x1b[2K\x1b[1AFORGED"
FORGED_ESCAPED = r"\x1b[2K\x1b[1AFORGED"

UNSAFE = [
    ("\x1b", r"\x1b"),  # ESC: terminal control sequences
    ("\x0b", r"\x0b"),  # VT
    ("\x0c", r"\x0c"),  # FF
    ("\r", r"\r"),
    ("\n", r"\n"),
    ("\x85", r"\x85"),  # NEL
    ("\u2028", r"\u2028"),  # LINE SEPARATOR
    ("\u2029", r"\u2029"),  # PARAGRAPH SEPARATOR
    ("\x7f", r"\x7f"),  # DEL
    ("\x00", r"\x00"),  # NUL
]


class Kind(str, enum.Enum):
    """A str enum, as an app might pass one."""

    REPLACED = "replaced"


def rendering(renderer: Any, level: str = "INFO") -> tuple[EventLog, CapturingLogger]:
    """An EventLog whose events go through ``renderer``, and the logger that keeps the lines."""
    out = CapturingLogger()
    return EventLog(level, structlog.wrap_logger(out, processors=[renderer])), out


def rendered(out: CapturingLogger) -> list[str]:
    """The lines the renderer produced."""
    return [str(call.args[0]) for call in out.calls]


def console() -> tuple[EventLog, CapturingLogger]:
    """An EventLog rendered by structlog's console renderer (no colours: they are ESC codes)."""
    return rendering(structlog.dev.ConsoleRenderer(colors=False))


@pytest.mark.parametrize(("raw", "escaped"), UNSAFE)
def test_unsafe_character_is_escaped(raw: str, escaped: str) -> None:
    """A control or line-separator character in a value goes out as its visible escape."""
    with capture_logs() as logs:
        EventLog().info("connection_rejected", client_id=f"a{raw}b")
    assert logs[0]["client_id"] == f"a{escaped}b"


@pytest.mark.parametrize(("raw", "escaped"), UNSAFE)
def test_console_line_has_no_raw_unsafe_character(raw: str, escaped: str) -> None:
    """Under the console renderer the line holds the escape, never the raw character."""
    log, out = console()
    log.info("connection_rejected", origin=f"http://evil.example{raw}FORGED")
    [line] = rendered(out)
    assert line.isprintable()
    assert f"origin=http://evil.example{escaped}FORGED" in line.split(" ")


def test_forged_client_id_cannot_erase_console_lines() -> None:
    """The reported ``\\x1b[2K\\x1b[1AFORGED`` client id is written escaped, as a field."""
    log, out = console()
    log.info("connection_rejected", reason="bad_client_id", client_id=FORGED)
    [line] = rendered(out)
    assert "\x1b" not in line
    assert f"client_id={FORGED_ESCAPED}" in line.split(" ")


def test_json_renderer_gets_escaped_values() -> None:
    """Under a JSON renderer the decoded field holds the escape, not the control character."""
    log, out = rendering(structlog.processors.JSONRenderer())
    log.info("connection_rejected", client_id=FORGED, origin="http://evil.example\x85FORGED")
    [line] = rendered(out)
    event = json.loads(line)
    assert event["client_id"] == FORGED_ESCAPED
    assert event["origin"] == r"http://evil.example\x85FORGED"


def test_escape_keeps_quotes_out_and_printable_text_in() -> None:
    """Escaping adds no quotes and keeps printable characters, non-ASCII included, as they are."""
    with capture_logs() as logs:
        EventLog().info("e", reason="bye\x1b[31m é 漢 \u2028'\"\\")
    assert logs[0]["reason"] == "bye\\x1b[31m é 漢 \\u2028'\"\\"


def test_only_unsafe_values_change() -> None:
    """Printable strings and plain scalars go out as the very same objects; the rest is escaped."""
    values: dict[str, Any] = {
        "text": "plain ascii, with spaces = and 'quotes'",
        "word": "é漢字",
        "size": 3,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
    }
    with capture_logs() as logs:
        EventLog().info("e", path="/x\x1b", **values)
    [event] = logs
    assert event["path"] == r"/x\x1b"
    for key, value in values.items():
        assert event[key] is value


def test_close_code_enum_is_a_plain_number() -> None:
    """An IntEnum close code is logged as its int: ``code=1012``, never ``CloseCode``."""
    with capture_logs() as logs:
        EventLog().info("drain_started", code=CloseCode.SERVICE_RESTART)
    assert type(logs[0]["code"]) is int
    assert logs[0]["code"] == 1012
    log, out = console()
    log.info("connection_closed", code=CloseCode.SERVICE_RESTART)
    [line] = rendered(out)
    assert "code=1012" in line.split(" ")
    assert "CloseCode" not in line


def test_str_enum_is_a_plain_string() -> None:
    """A str enum is logged as its plain string value."""
    with capture_logs() as logs:
        EventLog().info("e", kind=Kind.REPLACED)
    assert type(logs[0]["kind"]) is str
    assert logs[0]["kind"] == "replaced"


def test_bytes_become_safe_text() -> None:
    """Bytes are logged as text, undecodable bytes and controls escaped."""
    with capture_logs() as logs:
        EventLog().info("e", raw=b"ok\x1b[2K\xff", buf=bytearray(b"\x85"))
    assert logs[0]["raw"] == r"ok\x1b[2K\xff"
    assert logs[0]["buf"] == r"\x85"


def test_containers_are_cleaned_item_by_item() -> None:
    """Lists, tuples, sets and dicts get their enums and unsafe strings cleaned too."""
    with capture_logs() as logs:
        EventLog().info(
            "e",
            codes=[CloseCode.NORMAL, FORGED],
            pair=(CloseCode.REPLACED, "\u2028"),
            groups={"a\x85"},
            frozen={frozenset({"\x1b"})},
            extra={"k\x1b": {"code": CloseCode.SERVICE_RESTART}},
        )
    [event] = logs
    assert event["codes"] == [1000, FORGED_ESCAPED]
    assert event["pair"] == (4409, r"\u2028")
    assert event["groups"] == {r"a\x85"}
    assert event["frozen"] == {frozenset({r"\x1b"})}
    assert event["extra"] == {r"k\x1b": {"code": 1012}}
    assert type(event["extra"][r"k\x1b"]["code"]) is int


def test_deep_nesting_is_bounded_and_still_renders_safely() -> None:
    """Cleaning stops a few levels down; what lies deeper still renders without raw controls."""
    deep: list[Any] = ["\x1b"]
    for _ in range(50):
        deep = [deep]
    log, out = console()
    log.info("e", deep=deep, code=CloseCode.NORMAL)
    [line] = rendered(out)
    assert line.isprintable()
    assert "code=1000" in line.split(" ")


def test_object_with_unsafe_repr_is_logged_as_escaped_repr() -> None:
    """Renderers repr() other objects: one whose repr holds a control goes out escaped."""

    class Peer:
        def __repr__(self) -> str:
            return "<Peer \x1b[2K>"

    plain = object()
    with capture_logs() as logs:
        EventLog().info("e", peer=Peer(), plain=plain)
    assert logs[0]["peer"] == r"<Peer \x1b[2K>"
    assert logs[0]["plain"] is plain


def test_bound_fields_are_escaped() -> None:
    """Fields bound with ``bind`` (or given to the constructor) are escaped as well."""
    given = {"origin": "http://evil.example\x85FORGED"}
    with capture_logs() as logs:
        log = EventLog("INFO", fields=given).bind(client_id=FORGED, code=CloseCode.REPLACED)
        log.info("connection_opened", path="/ok")
    assert logs == [
        {
            "event": "connection_opened",
            "log_level": "info",
            "origin": r"http://evil.example\x85FORGED",
            "client_id": FORGED_ESCAPED,
            "code": 4409,
            "path": "/ok",
        }
    ]
    assert given == {"origin": "http://evil.example\x85FORGED"}


def test_exc_info_is_passed_as_is_next_to_escaped_fields() -> None:
    """``exc_info`` goes to the renderer untouched while the other fields are escaped."""
    exc = RuntimeError("boom\x1b")
    with capture_logs() as logs:
        EventLog().error("app_exception", path="/p\x1b", exc_info=exc)
    assert logs[0]["exc_info"] is exc
    assert logs[0]["path"] == r"/p\x1b"


@pytest.mark.parametrize("method", ["debug", "info", "warning", "error"])
def test_every_level_escapes(method: str) -> None:
    """Each level method escapes its fields."""
    with capture_logs() as logs:
        getattr(EventLog("DEBUG"), method)("e", client_id=FORGED)
    assert logs[0]["client_id"] == FORGED_ESCAPED
