"""StabilizerSettings: defaults, environment, precedence, parsing and errors naming env vars."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send
from structlog.testing import capture_logs

from asgi_ws_stabilizer import Hub, SettingsError, StabilizerMiddleware, StabilizerSettings
from asgi_ws_stabilizer.config.env import env_var
from asgi_ws_stabilizer.config.legacy import LEGACY_SETTINGS, legacy_problem
from asgi_ws_stabilizer.config.settings import DURATION_FIELDS, load_settings, unknown_env_vars


def test_defaults() -> None:
    """With no environment and no arguments every setting has its documented default."""
    s = load_settings()
    assert s.heartbeat_interval == 20.0
    assert s.heartbeat_timeout == 10.0
    assert s.ping_message == "ping"
    assert s.pong_message == "pong"
    assert s.max_message_size == 1024 * 1024
    assert s.receive_queue_size == 16
    assert s.max_connections is None
    assert s.max_connections_per_ip is None
    assert s.max_connections_per_client is None
    assert s.retry_after == 5
    assert s.allowed_origins is None
    assert s.client_id_param == "client_id"
    assert s.loop_stall_threshold == 0.5
    assert s.log_level == "INFO"
    assert s.log_connections is False
    assert s.heartbeat_enabled


def test_env_var_names() -> None:
    """Each field's env var is the prefix plus the upper-cased field name."""
    assert env_var("heartbeat_interval") == "WS_STABILIZER_HEARTBEAT_INTERVAL"


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """``WS_STABILIZER_*`` variables set the matching fields, converted to their types."""
    monkeypatch.setenv("WS_STABILIZER_HEARTBEAT_INTERVAL", "5")
    monkeypatch.setenv("WS_STABILIZER_HEARTBEAT_TIMEOUT", "2.5")
    monkeypatch.setenv("WS_STABILIZER_MAX_CONNECTIONS", "100")
    monkeypatch.setenv("WS_STABILIZER_PING_MESSAGE", "hb")
    monkeypatch.setenv("WS_STABILIZER_LOG_LEVEL", "warning")
    monkeypatch.setenv("WS_STABILIZER_LOG_CONNECTIONS", "true")
    s = load_settings()
    assert s.heartbeat_interval == 5.0
    assert s.heartbeat_timeout == 2.5
    assert s.max_connections == 100
    assert s.ping_message == "hb"
    assert s.log_level == "WARNING"
    assert s.log_connections is True


def test_keyword_arguments_override_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyword argument wins over the environment variable of the same setting."""
    monkeypatch.setenv("WS_STABILIZER_HEARTBEAT_INTERVAL", "5")
    monkeypatch.setenv("WS_STABILIZER_MAX_CONNECTIONS", "100")
    s = load_settings(heartbeat_interval=7)
    assert s.heartbeat_interval == 7.0
    assert s.max_connections == 100


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("WS_STABILIZER_MAX_MESSAGE_SIZE", "max_message_size"),
        ("WS_STABILIZER_HEARTBEAT_INTERVAL", "heartbeat_interval"),
        ("WS_STABILIZER_CLIENT_ID_PARAM", "client_id_param"),
    ],
)
def test_empty_env_value_turns_limit_off(
    monkeypatch: pytest.MonkeyPatch, name: str, field: str
) -> None:
    """An empty environment value turns a setting with a default off (``None``)."""
    monkeypatch.setenv(name, "")
    assert getattr(load_settings(), field) is None


def test_empty_allowed_origins_env_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty ``WS_STABILIZER_ALLOWED_ORIGINS`` means the default policy, not an empty list."""
    monkeypatch.setenv("WS_STABILIZER_ALLOWED_ORIGINS", "")
    assert load_settings().allowed_origins is None


def test_none_keyword_turns_limit_off() -> None:
    """``None`` as a keyword argument turns a limit off."""
    assert load_settings(max_message_size=None).max_message_size is None


@pytest.mark.parametrize("value", ["0", "0.0"])
def test_zero_heartbeat_interval_env_turns_heartbeat_off(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """``WS_STABILIZER_HEARTBEAT_INTERVAL=0`` turns the heartbeat off."""
    monkeypatch.setenv("WS_STABILIZER_HEARTBEAT_INTERVAL", value)
    s = load_settings()
    assert s.heartbeat_interval is None
    assert not s.heartbeat_enabled


def test_zero_heartbeat_interval_keyword_turns_heartbeat_off() -> None:
    """``heartbeat_interval=0`` turns the heartbeat off."""
    assert load_settings(heartbeat_interval=0).heartbeat_interval is None


def test_allowed_origins_from_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A comma list of origins is split, trimmed, lower-cased and stripped of trailing slashes."""
    monkeypatch.setenv(
        "WS_STABILIZER_ALLOWED_ORIGINS", " https://A.example.com/ , http://b.example.com:8080,"
    )
    assert load_settings().allowed_origins == [
        "https://a.example.com",
        "http://b.example.com:8080",
    ]


def test_allowed_origins_from_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON list of origins is accepted too."""
    monkeypatch.setenv(
        "WS_STABILIZER_ALLOWED_ORIGINS", '["https://a.example.com", "https://b.example.com"]'
    )
    assert load_settings().allowed_origins == ["https://a.example.com", "https://b.example.com"]


def test_allowed_origins_star(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*`` allows every origin and is kept as is."""
    monkeypatch.setenv("WS_STABILIZER_ALLOWED_ORIGINS", "*")
    assert load_settings().allowed_origins == ["*"]


def test_allowed_origins_keyword_list() -> None:
    """A list passed as a keyword argument is normalised the same way."""
    assert load_settings(allowed_origins=["HTTPS://X.example/"]).allowed_origins == [
        "https://x.example"
    ]


def test_allowed_origins_accepts_null() -> None:
    """``null`` may be listed to allow the opaque origin of sandboxed pages."""
    assert load_settings(allowed_origins=["NULL", "https://a.example"]).allowed_origins == [
        "null",
        "https://a.example",
    ]


def test_allowed_origin_that_does_not_parse_is_rejected() -> None:
    """An allowed origin that cannot be parsed fails at start-up, naming the env var."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_ALLOWED_ORIGINS"):
        load_settings(allowed_origins=["https://example.com:99999"])


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("WS_STABILIZER_HEARTBEAT_TIMEOUT", "abc"),
        ("WS_STABILIZER_HEARTBEAT_TIMEOUT", "0"),
        ("WS_STABILIZER_HEARTBEAT_TIMEOUT", ""),
        ("WS_STABILIZER_HEARTBEAT_INTERVAL", "-1"),
        ("WS_STABILIZER_MAX_CONNECTIONS", "0"),
        ("WS_STABILIZER_MAX_MESSAGE_SIZE", "1.5"),
        ("WS_STABILIZER_RECEIVE_QUEUE_SIZE", "0"),
        ("WS_STABILIZER_RETRY_AFTER", "-1"),
        ("WS_STABILIZER_LOG_LEVEL", "loud"),
        ("WS_STABILIZER_ALLOWED_ORIGINS", "example.com"),
        ("WS_STABILIZER_ALLOWED_ORIGINS", "[not json"),
        ("WS_STABILIZER_PING_MESSAGE", ""),
    ],
)
def test_bad_env_value_names_env_var(monkeypatch: pytest.MonkeyPatch, env: str, value: str) -> None:
    """A bad environment value raises ``SettingsError`` (a ``ValueError``) naming the variable."""
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert isinstance(info.value, ValueError)
    assert env in str(info.value)
    assert [problem[1] for problem in info.value.problems] == [env]


def test_bad_keyword_value_names_env_var_and_value() -> None:
    """A bad keyword value is reported with the field, its env var and the value given."""
    with pytest.raises(SettingsError) as info:
        load_settings(heartbeat_timeout=-1)
    message = str(info.value)
    assert "heartbeat_timeout" in message
    assert "WS_STABILIZER_HEARTBEAT_TIMEOUT" in message
    assert "-1" in message


def test_every_bad_value_is_reported() -> None:
    """Several bad values are all reported at once."""
    with pytest.raises(SettingsError) as info:
        load_settings(heartbeat_timeout=0, receive_queue_size=0)
    assert {field for field, _, _ in info.value.problems} == {
        "heartbeat_timeout",
        "receive_queue_size",
    }


def test_unknown_keyword_argument() -> None:
    """A misspelt keyword argument is an error that names it."""
    overrides: dict[str, Any] = {"heartbeat_intervl": 5}
    with pytest.raises(SettingsError, match="heartbeat_intervl") as info:
        load_settings(**overrides)
    assert info.value.problems == [
        ("heartbeat_intervl", "no such setting", "unknown keyword argument")
    ]


def test_ping_equal_to_pong_rejected() -> None:
    """The ping and pong messages must differ, or a ping could not be told from a pong."""
    with pytest.raises(SettingsError, match="ping_message and pong_message must differ"):
        load_settings(ping_message="beat", pong_message="beat")


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after they are built."""
    s = StabilizerSettings()
    with pytest.raises(ValueError, match="frozen"):
        s.heartbeat_timeout = 1.0


def test_unknown_env_vars_finds_typos() -> None:
    """Prefixed variables that name no setting are listed, sorted; others are ignored."""
    environ = {
        "WS_STABILIZER_HEARTBEAT_INTERVL": "5",
        "ws_stabilizer_max_conections": "3",
        "WS_STABILIZER_HEARTBEAT_INTERVAL": "5",
        "PATH": "/bin",
    }
    assert unknown_env_vars(environ) == [
        "WS_STABILIZER_HEARTBEAT_INTERVL",
        "ws_stabilizer_max_conections",
    ]


def test_unknown_env_vars_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument the process environment is checked."""
    monkeypatch.setenv("WS_STABILIZER_RETRY_AFTR", "3")
    assert unknown_env_vars() == ["WS_STABILIZER_RETRY_AFTR"]


def test_unknown_env_var_does_not_break_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in the environment does not stop the settings from loading."""
    monkeypatch.setenv("WS_STABILIZER_RETRY_AFTR", "3")
    assert load_settings().retry_after == 5


# -- durations as timedelta -----------------------------------------------------------------


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_every_duration_takes_a_timedelta(field: str) -> None:
    """Each duration setting takes a ``timedelta`` as a keyword argument, kept as seconds."""
    overrides: dict[str, Any] = {field: timedelta(seconds=3)}
    assert getattr(load_settings(**overrides), field) == 3
    assert getattr(StabilizerSettings(**overrides), field) == 3


def test_timedelta_of_hours_and_fractions() -> None:
    """A ``timedelta`` keeps its fractions of a second, and hours become 3600 seconds each."""
    s = load_settings(reconnect_token_ttl=timedelta(hours=1), heartbeat_timeout=timedelta(0, 2.5))
    assert s.reconnect_token_ttl == 3600.0
    assert s.heartbeat_timeout == 2.5


def test_zero_timedelta_turns_heartbeat_off() -> None:
    """``heartbeat_interval=timedelta(0)`` turns the heartbeat off, like ``0``."""
    assert load_settings(heartbeat_interval=timedelta(0)).heartbeat_interval is None


def test_negative_timedelta_names_env_var() -> None:
    """A negative ``timedelta`` is refused like a negative number, naming the env var."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_SESSION_TTL") as info:
        load_settings(session_ttl=timedelta(seconds=-5))
    assert [field for field, _, _ in info.value.problems] == ["session_ttl"]


def test_retry_after_timedelta_must_be_whole_seconds() -> None:
    """``retry_after`` is sent as an integer header, so a fractional ``timedelta`` is refused."""
    assert load_settings(retry_after=timedelta(minutes=1)).retry_after == 60
    with pytest.raises(SettingsError, match="whole seconds"):
        load_settings(retry_after=timedelta(milliseconds=1500))


def test_duration_env_vars_stay_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment variables give durations in seconds."""
    monkeypatch.setenv("WS_STABILIZER_RECONNECT_TOKEN_TTL", "3600")
    monkeypatch.setenv("WS_STABILIZER_DRAIN_SPREAD", "2.5")
    s = load_settings()
    assert s.reconnect_token_ttl == 3600.0
    assert s.drain_spread == 2.5


def test_hub_takes_timedelta_over_settings() -> None:
    """``Hub(settings, drain_timeout=timedelta(...))`` applies the override in seconds."""
    hub = Hub(StabilizerSettings(session_ttl=timedelta(minutes=2)), drain_timeout=timedelta(0, 4))
    assert hub.settings.session_ttl == 120.0
    assert hub.settings.drain_timeout == 4.0


# -- fastapi-websocket-stabilizer's settings that have no field here ------------------------

REFUSED = [
    pytest.param("heartbeat_type", "ping", "ping_message", id="heartbeat_type-ping"),
    pytest.param("heartbeat_type", "custom", "pong_message", id="heartbeat_type-custom"),
    pytest.param("compression", "deflate", "--ws-per-message-deflate", id="compression-deflate"),
    pytest.param("compression", "none", "hypercorn", id="compression-none"),
    pytest.param("enable_reconnect", False, "_stabilizer=1", id="enable_reconnect-false"),
    pytest.param("memory_check_interval", 60.0, "hub.memory_usage()", id="memory_check_interval"),
]


@pytest.mark.parametrize(("name", "value", "hint"), REFUSED)
def test_old_keyword_without_counterpart_is_refused(name: str, value: Any, hint: str) -> None:
    """An old setting with no counterpart fails, naming its env var and what to use instead."""
    overrides: dict[str, Any] = {name: value}
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    ((field, env, message),) = info.value.problems
    assert field == name
    assert env == env_var(name)
    assert hint in message
    assert f"Remove {name}" in message
    assert f"{name} (env {env_var(name)})" in str(info.value)


@pytest.mark.parametrize(("name", "value", "hint"), REFUSED)
def test_old_env_var_without_counterpart_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: Any, hint: str
) -> None:
    """The same old setting given as a ``WS_STABILIZER_*`` variable fails the same way."""
    monkeypatch.setenv(env_var(name), str(value).lower())
    with pytest.raises(SettingsError) as info:
        load_settings()
    ((field, env, message),) = info.value.problems
    assert (field, env) == (name, env_var(name))
    assert hint in message


def test_old_env_var_is_matched_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """Old variables are recognised whatever their case, like the others."""
    monkeypatch.setenv("ws_stabilizer_compression", "none")
    with pytest.raises(SettingsError, match="WS_STABILIZER_COMPRESSION"):
        load_settings()


def test_old_setting_refused_by_settings_directly() -> None:
    """Built directly, ``StabilizerSettings`` raises ``ValidationError`` with the same hint."""
    overrides: dict[str, Any] = {"compression": "none"}
    with pytest.raises(ValidationError, match="ws-per-message-deflate") as info:
        StabilizerSettings(**overrides)
    assert [error["loc"] for error in info.value.errors()] == [("compression",)]


def test_heartbeat_type_hint_gives_the_old_json_ping() -> None:
    """The heartbeat_type message says how to keep clients of the old JSON ping working."""
    message = str(legacy_problem("heartbeat_type", "ping"))
    assert 'ping_message=\'{"type":"ping"}\'' in message
    assert "heartbeat_clients='all'" in message
    assert "WS_STABILIZER_PING_MESSAGE" in message


@pytest.mark.parametrize("value", [True, "true", "1", "yes", "on"])
def test_enable_reconnect_true_is_accepted(value: Any) -> None:
    """``enable_reconnect=True`` describes what happens anyway: accepted, nothing set."""
    overrides: dict[str, Any] = {"enable_reconnect": value}
    assert load_settings(**overrides) == load_settings()


def test_enable_reconnect_true_env_is_accepted_and_not_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``WS_STABILIZER_ENABLE_RECONNECT=true`` loads, and is not reported as an unknown variable."""
    monkeypatch.setenv("WS_STABILIZER_ENABLE_RECONNECT", "true")
    assert load_settings() == StabilizerSettings()
    assert unknown_env_vars() == []


@pytest.mark.parametrize("value", ["sometimes", 2, None])
def test_enable_reconnect_not_a_boolean_is_refused(value: Any) -> None:
    """An ``enable_reconnect`` that is not a boolean is refused, saying a boolean is expected."""
    overrides: dict[str, Any] = {"enable_reconnect": value}
    with pytest.raises(SettingsError, match="expected true or false"):
        load_settings(**overrides)


def test_keyword_wins_over_old_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    """As for every setting, a keyword argument wins over the old variable of the same name."""
    monkeypatch.setenv("WS_STABILIZER_ENABLE_RECONNECT", "false")
    overrides: dict[str, Any] = {"enable_reconnect": True}
    assert load_settings(**overrides).heartbeat_interval == 20.0


def test_old_and_other_problems_reported_together() -> None:
    """Refused old settings, bad values and unknown names all come in one error."""
    overrides: dict[str, Any] = {
        "compression": "none",
        "memory_check_interval": 60,
        "heartbeat_timeout": -1,
        "heartbeat_intervl": 5,
    }
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert [field for field, _, _ in info.value.problems] == [
        "compression",
        "memory_check_interval",
        "heartbeat_timeout",
        "heartbeat_intervl",
    ]
    assert info.value.problems[-1] == (
        "heartbeat_intervl",
        "no such setting",
        "unknown keyword argument",
    )
    assert "(got -1)" in info.value.problems[2][2]


def test_old_settings_are_not_fields() -> None:
    """The old names are not settings of their own: none is a field, and none is dumped."""
    assert not set(LEGACY_SETTINGS) & set(StabilizerSettings.model_fields)
    overrides: dict[str, Any] = {"enable_reconnect": True}
    assert "enable_reconnect" not in load_settings(**overrides).model_dump()


def test_unknown_env_vars_leaves_old_names_to_loading() -> None:
    """Old variables are judged by loading, so they are not listed as typos."""
    environ = {env_var(name): "x" for name in LEGACY_SETTINGS}
    assert unknown_env_vars(environ) == []


def test_middleware_with_old_keyword_fails_startup() -> None:
    """An old keyword passed to the middleware is held until startup, then reported."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("never called")

    overrides: dict[str, Any] = {"memory_check_interval": 60}
    with capture_logs() as logs:
        mw = StabilizerMiddleware(app, **overrides)
    assert [entry["event"] for entry in logs] == ["settings_invalid"]
    with pytest.raises(SettingsError, match="WS_STABILIZER_MEMORY_CHECK_INTERVAL"):
        mw.hub  # noqa: B018


@pytest.mark.parametrize(("given", "expected"), [("ALL", "all"), ("opted-in", "opted_in")])
def test_heartbeat_clients_spellings(given: str, expected: str) -> None:
    """``heartbeat_clients`` takes any case and a hyphen for the underscore."""
    assert load_settings(heartbeat_clients=given).heartbeat_clients == expected


def test_heartbeat_clients_refuses_other_values() -> None:
    """Anything but ``opted_in`` or ``all`` fails naming the env var."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_HEARTBEAT_CLIENTS"):
        load_settings(heartbeat_clients="some")
