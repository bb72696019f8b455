"""fastapi-websocket-stabilizer's ``WebSocketConfig`` fields that have no setting of the same name.

The fields that share a name with a setting are ordinary settings. The others
(``LEGACY_SETTINGS``) are recognised, as keyword arguments and as ``WS_STABILIZER_*`` variables:
``enable_reconnect=True`` is accepted because it describes what happens anyway, and every other
use fails at start-up with a message that says what to use instead, so that a setting can never be
accepted and then do nothing. ``StabilizerSettings`` reads them with ``LegacyEnvSource`` and
judges them with ``judge_legacy_settings``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import PydanticBaseSettingsSource

from .env import env_var

__all__ = [
    "LEGACY_SETTINGS",
    "LegacyEnvSource",
    "judge_legacy_settings",
    "legacy_problem",
]

# -- what to do instead of each old field --

_HEARTBEAT_TYPE = (
    "not a setting here: the middleware runs its own text heartbeat, sending ping_message and "
    "consuming the client's pong_message (defaults 'ping' and 'pong'), to the clients "
    "heartbeat_clients names (heartbeat_interval=0 turns it off). Remove heartbeat_type. "
    "Clients written for fastapi-websocket-stabilizer got the JSON text "
    '{"type":"ping","timestamp":...} and answered \'pong\': to keep pinging them set '
    "heartbeat_clients='all' (WS_STABILIZER_HEARTBEAT_CLIENTS) and "
    'ping_message=\'{"type":"ping"}\' (WS_STABILIZER_PING_MESSAGE), and keep '
    "pong_message='pong'; for a custom heartbeat set ping_message and pong_message "
    "(WS_STABILIZER_PONG_MESSAGE) to its two texts"
)
_COMPRESSION = (
    "not a setting here: permessage-deflate is negotiated by the server, not by the app "
    "(fastapi-websocket-stabilizer never applied it either). Remove compression and choose it "
    "on the server: uvicorn --ws-per-message-deflate true|false (on by default; "
    "uvicorn.run(..., ws_per_message_deflate=False)); hypercorn has no switch and compresses "
    "whenever the client offers it, so turn it off in the client (websockets: "
    "connect(..., compression=None))"
)
_ENABLE_RECONNECT = (
    "resumption cannot be switched off server-wide, and needs no switch: only clients that "
    "opt in with the query parameter _stabilizer=1 (the JavaScript client does) get resume "
    "tokens and sessions, and clients written for fastapi-websocket-stabilizer never send it. "
    "Remove enable_reconnect (true is accepted and changes nothing)"
)
_MEMORY_CHECK_INTERVAL = (
    "not a setting here: memory is accounted when it changes (each user_data write, hub send "
    "and inbound message) and max_total_memory is enforced right then, so there is no periodic "
    "check to time. Remove memory_check_interval; a value changed in place inside user_data is "
    "measured again on its next write or by hub.memory_usage(), which you may call from a "
    "periodic task of your own"
)

_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})


def _as_bool(value: Any) -> bool | None:
    """``value`` as a boolean the way an environment variable spells one, else ``None``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _enable_reconnect(value: Any) -> str | None:
    """``None`` for true (what happens anyway); false, or not a boolean, is refused."""
    flag = _as_bool(value)
    if flag is True:
        return None
    if flag is None:
        return "expected true or false; " + _ENABLE_RECONNECT
    return _ENABLE_RECONNECT


LEGACY_SETTINGS: Mapping[str, Callable[[Any], str | None]] = {
    "heartbeat_type": lambda _: _HEARTBEAT_TYPE,
    "enable_reconnect": _enable_reconnect,
    "compression": lambda _: _COMPRESSION,
    "memory_check_interval": lambda _: _MEMORY_CHECK_INTERVAL,
}
"""fastapi-websocket-stabilizer's ``WebSocketConfig`` fields that are not fields here, each with
its verdict on a value: ``None`` (accepted, nothing to set) or what to do instead."""


def legacy_problem(name: str, value: Any) -> str | None:
    """What is wrong with the old setting ``name`` set to ``value``; ``None`` when it is fine.

    Raises:
        KeyError: ``name`` is not in ``LEGACY_SETTINGS``.
    """
    return LEGACY_SETTINGS[name](value)


class LegacyEnvSource(PydanticBaseSettingsSource):
    """Reads ``WS_STABILIZER_*`` variables named after ``LEGACY_SETTINGS`` (any case), so that
    they are judged like keyword arguments instead of being ignored as unknown variables."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {key.upper(): value for key, value in os.environ.items()}
        return {
            name: environ[env_var(name)] for name in LEGACY_SETTINGS if env_var(name) in environ
        }


def judge_legacy_settings(title: str, data: Any, handler: Callable[[Any], Any]) -> Any:
    """``handler(data)`` without the old settings in ``data``: drop accepted ones, and report
    refused ones next to every other problem, in one ``ValidationError`` titled ``title``.

    The body of a ``mode="wrap"`` model validator.
    """
    if not isinstance(data, dict) or not LEGACY_SETTINGS.keys() & data.keys():
        return handler(data)
    data = dict(data)
    problems: list[InitErrorDetails] = []
    for name in LEGACY_SETTINGS:
        if name not in data:
            continue
        value = data.pop(name)
        hint = legacy_problem(name, value)
        if hint is not None:
            error = PydanticCustomError("legacy_setting", "{hint}", {"hint": hint})
            problems.append({"type": error, "loc": (name,), "input": value})
    try:
        result = handler(data)
    except ValidationError as exc:
        problems.extend(_details(exc))
        raise ValidationError.from_exception_data(title, problems) from None
    if problems:
        raise ValidationError.from_exception_data(title, problems)
    return result


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    """The line errors of ``exc``, to be raised again together with others."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        detail: InitErrorDetails = {
            "type": PydanticCustomError(error["type"], "{msg}", {"msg": error["msg"]}),
            "loc": error["loc"],
            "input": error["input"],
        }
        details.append(detail)
    return details
