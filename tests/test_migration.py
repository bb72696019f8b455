"""Moving from fastapi-websocket-stabilizer: its config and its manager's methods, mapped.

Checked against the installed old library (the ``bench`` extra) where it is there, so a field or
method it has and the migration guide does not cover fails here. The ported app's behaviour on
real servers is in ``tests/wire/test_migration.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from datetime import timedelta
from typing import Any

import pytest
from starlette.routing import BaseRoute

from asgi_ws_stabilizer import ConnectionHandle, Hub, SettingsError, StabilizerSettings
from asgi_ws_stabilizer.config.env import env_var
from asgi_ws_stabilizer.config.legacy import LEGACY_SETTINGS
from asgi_ws_stabilizer.config.settings import load_settings
from examples import migrate_from_fastapi_websocket_stabilizer as ported

REFUSED = ("heartbeat_type", "compression", "memory_check_interval")
"""Old fields refused at any value; ``enable_reconnect`` is refused only when false."""

MANAGER_METHODS: dict[str, tuple[type[Any], str] | None] = {
    "start": None,  # the middleware starts the hub with the app's lifespan
    "connect": (ConnectionHandle, "identify"),  # registered before the handler; id from the app
    "disconnect": (ConnectionHandle, "close"),  # or return from the handler
    "send_to_client": (Hub, "send_to"),
    "broadcast": (Hub, "broadcast"),
    "get_active_connections": (Hub, "client_ids"),
    "get_connection_count": (Hub, "connection_count"),
    "generate_reconnect_token": (ConnectionHandle, "resume_token"),
    "validate_reconnect_token": None,  # the middleware checks the token in the handshake
    "handle_pong": None,  # the middleware consumes the pong
    "graceful_shutdown": (Hub, "drain"),
    "get_memory_usage": (Hub, "memory_usage"),
    "set_user_data": (ConnectionHandle, "user_data"),
    "get_user_data": (ConnectionHandle, "user_data"),
}
"""Each public method of the old ``WebSocketConnectionManager`` and what replaces it."""


def old_library() -> Any:
    return pytest.importorskip("fastapi_websocket_stabilizer")


def test_every_old_config_field_is_a_setting_or_judged() -> None:
    """Every ``WebSocketConfig`` field is a setting of the same name or an old setting we judge."""
    fields = {field.name for field in dataclasses.fields(old_library().WebSocketConfig)}
    same_name = fields & set(StabilizerSettings.model_fields)
    assert fields - same_name == set(LEGACY_SETTINGS)
    assert set(LEGACY_SETTINGS) == {*REFUSED, "enable_reconnect"}


def test_old_defaults_fail_on_exactly_the_refused_fields() -> None:
    """The old config at its defaults, passed whole, fails on the three fields that have no
    counterpart, each naming its env var; nothing else in it is a problem."""
    old = dataclasses.asdict(old_library().WebSocketConfig())
    with pytest.raises(SettingsError) as info:
        load_settings(**old)
    problems = info.value.problems
    assert [field for field, _, _ in problems] == list(REFUSED)
    assert [env for _, env, _ in problems] == [env_var(name) for name in REFUSED]


def test_old_defaults_without_refused_fields_map() -> None:
    """Without the refused fields the old defaults load: the timedelta ttl becomes seconds and
    the enum policy its value; enable_reconnect=True is accepted."""
    old = dataclasses.asdict(old_library().WebSocketConfig())
    for name in REFUSED:
        del old[name]
    s = load_settings(**old)
    assert s.heartbeat_interval == 30.0
    assert s.heartbeat_timeout == 60.0
    assert s.reconnect_token_ttl == 3600.0
    assert s.max_message_size == 1024 * 1024
    assert s.memory_eviction_policy == "lru"
    assert s.log_level == "INFO"
    assert s.num_shards == 16
    assert s.max_concurrent_cleanup == 100
    assert s.max_concurrent_broadcast == 1000


@pytest.mark.parametrize(("old", "ours"), [("LRU", "lru"), ("FIFO", "fifo"), ("OLDEST", "fifo")])
def test_old_eviction_policy_enum_maps(old: str, ours: str) -> None:
    """The old ``MemoryEvictionPolicy`` members are accepted; ``OLDEST`` is ``fifo``."""
    policy = getattr(old_library().MemoryEvictionPolicy, old)
    overrides: dict[str, Any] = {"memory_eviction_policy": policy}
    assert load_settings(**overrides).memory_eviction_policy == ours


@pytest.mark.parametrize("mode", ["DEFLATE", "NONE"])
def test_old_compression_enum_is_refused_with_server_flags(mode: str) -> None:
    """``compression=CompressionMode.X`` fails with how to set compression in the server."""
    overrides: dict[str, Any] = {"compression": getattr(old_library().CompressionMode, mode)}
    with pytest.raises(SettingsError, match=re.escape("--ws-per-message-deflate true|false")):
        load_settings(**overrides)


README_CONFIGS: list[Any] = [
    pytest.param(
        {"heartbeat_interval": 5.0, "heartbeat_timeout": 10.0, "max_connections": 10000},
        None,
        id="low-latency",
    ),
    pytest.param(
        {"heartbeat_interval": 45.0, "heartbeat_timeout": 90.0, "compression": "none"},
        "compression",
        id="slow-proxy",
    ),
    pytest.param({"heartbeat_interval": 20.0, "max_connections": 500}, None, id="serverless"),
    pytest.param(
        {
            "heartbeat_interval": 30.0,
            "max_connections": 50000,
            "num_shards": 32,
            "max_concurrent_cleanup": 50,
            "max_concurrent_broadcast": 500,
            "max_memory_per_connection": 1024 * 1024,
            "max_total_memory": 1024 * 1024 * 1024,
            "memory_eviction_policy": "lru",
        },
        None,
        id="high-load",
    ),
    pytest.param({"heartbeat_interval": 25.0, "heartbeat_timeout": 50.0}, None, id="alb"),
]


@pytest.mark.parametrize(("config", "refused"), README_CONFIGS)
def test_old_readme_example_configs(config: dict[str, Any], refused: str | None) -> None:
    """The old README's example configurations load as they are, except the one that sets
    ``compression``, which fails on that field alone."""
    if refused is None:
        s = load_settings(**config)
        for name, value in config.items():
            assert getattr(s, name) == value
        return
    with pytest.raises(SettingsError) as info:
        load_settings(**config)
    assert [field for field, _, _ in info.value.problems] == [refused]


def test_every_old_manager_method_is_mapped() -> None:
    """Every public method of the old manager is in the guide's table, and what it maps to
    exists here."""
    manager = old_library().WebSocketConnectionManager
    public = {name for name, _ in inspect.getmembers(manager) if not name.startswith("_")}
    assert public == set(MANAGER_METHODS)
    for target in MANAGER_METHODS.values():
        if target is not None:
            owner, attribute = target
            assert hasattr(owner, attribute), f"{owner.__name__}.{attribute}"


def test_ported_app_settings() -> None:
    """The ported app keeps the old Quick Start's settings and pings every client with the old
    JSON ping, which old clients answer with the default pong."""
    s = ported.hub.settings
    assert (s.heartbeat_interval, s.heartbeat_timeout, s.max_connections) == (30.0, 60.0, 100)
    assert s.reconnect_token_ttl == timedelta(hours=1).total_seconds()
    assert s.heartbeat_clients == "all"
    assert s.ping_message == '{"type":"ping"}'
    assert s.pong_message == "pong"


def test_ported_app_has_a_route_per_pattern() -> None:
    """The ported app has the Quick Start route and one route per usage pattern."""
    routes: list[BaseRoute] = ported.app.routes
    paths = {getattr(route, "path", None) for route in routes}
    assert {
        "/ws/{client_id}",
        "/broadcast",
        "/direct/{client_id}",
        "/stats",
        "/profile/{client_id}",
    } <= paths
