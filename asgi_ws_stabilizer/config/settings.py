"""``StabilizerSettings``: every knob, read from ``WS_STABILIZER_*`` environment variables.

Precedence: keyword arguments (to the middleware or to ``StabilizerSettings``) over environment
variables over defaults. ``None``, or an empty environment value, turns a limit off. Durations
are seconds; keyword arguments also take a ``datetime.timedelta``.

The fields of fastapi-websocket-stabilizer's ``WebSocketConfig`` that share a name with a field
here are ordinary settings; the others are judged by ``legacy`` (``LEGACY_SETTINGS``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ..errors import SettingsError
from .env import ENV_PREFIX, env_var
from .legacy import LEGACY_SETTINGS, LegacyEnvSource, judge_legacy_settings
from .origins import normalise_origin
from .urls import backend_url_problem, mask_url

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = [
    "DURATION_FIELDS",
    "ENV_PREFIX",
    "SettingsOverrides",
    "StabilizerSettings",
    "Unpack",
    "load_settings",
    "unknown_env_vars",
]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_OPTIONAL_FIELDS = (
    "heartbeat_interval",
    "max_message_size",
    "max_connections",
    "max_connections_per_ip",
    "max_connections_per_client",
    "allowed_origins",
    "client_id_param",
    "max_send_queue",
    "send_timeout",
    "max_memory_per_connection",
    "max_total_memory",
    "rate_limit",
    "rate_limit_burst",
    "secret_key",
)

DURATION_FIELDS = (
    "heartbeat_interval",
    "heartbeat_timeout",
    "retry_after",
    "loop_stall_threshold",
    "send_timeout",
    "reconnect_token_ttl",
    "session_ttl",
    "drain_timeout",
    "drain_spread",
    "presence_ttl",
)
"""Settings in seconds; keyword arguments may also be a ``timedelta``."""


class SettingsOverrides(TypedDict, total=False):
    """Keyword arguments that override settings; type checkers catch a misspelt name."""

    heartbeat_interval: float | timedelta | None
    heartbeat_timeout: float | timedelta
    heartbeat_clients: str
    ping_message: str
    pong_message: str
    max_message_size: int | None
    receive_queue_size: int
    max_connections: int | None
    max_connections_per_ip: int | None
    max_connections_per_client: int | None
    retry_after: int | timedelta
    allowed_origins: list[str] | str | None
    client_id_param: str | None
    loop_stall_threshold: float | timedelta
    log_level: str
    log_connections: bool
    enable_metrics: bool
    max_send_queue: int | None
    slow_consumer_policy: str
    send_timeout: float | timedelta | None
    num_shards: int
    max_concurrent_broadcast: int
    max_concurrent_cleanup: int
    max_memory_per_connection: int | None
    max_total_memory: int | None
    memory_eviction_policy: str
    rate_limit: float | None
    rate_limit_burst: int | None
    secret_key: str | SecretStr | None
    reconnect_token_ttl: float | timedelta
    session_ttl: float | timedelta
    resume_buffer_size: int
    drain_timeout: float | timedelta
    drain_spread: float | timedelta
    drain_on_signal: bool
    backend_url: str
    backend_prefix: str
    presence_ttl: float | timedelta
    backend_buffer_size: int


class StabilizerSettings(BaseSettings):
    """All settings of the middleware; see the README's settings table for each one's effect.

    Build it with keyword arguments to override the environment; durations take seconds or a
    ``timedelta``. Built directly, a bad value raises pydantic's ``ValidationError``;
    ``load_settings``, ``Hub`` and the middleware turn that into ``SettingsError``, whose message
    names each environment variable. An old ``WebSocketConfig`` field (``LEGACY_SETTINGS``) is
    accepted or refused with what to use instead.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    if TYPE_CHECKING:
        # What the keyword arguments take (a timedelta for a duration, a plain str for a
        # secret or an origin list), rather than the type each field holds once validated.
        def __init__(self, **values: Unpack[SettingsOverrides]) -> None: ...

    heartbeat_interval: float | None = Field(default=20.0, ge=0)
    heartbeat_timeout: float = Field(default=10.0, gt=0)
    heartbeat_clients: Literal["opted_in", "all"] = "opted_in"
    ping_message: str = Field(default="ping", min_length=1)
    pong_message: str = Field(default="pong", min_length=1)
    max_message_size: int | None = Field(default=1024 * 1024, gt=0)
    receive_queue_size: int = Field(default=16, ge=1)
    max_connections: int | None = Field(default=None, gt=0)
    max_connections_per_ip: int | None = Field(default=None, gt=0)
    max_connections_per_client: int | None = Field(default=None, gt=0)
    retry_after: int = Field(default=5, ge=0)
    allowed_origins: Annotated[list[str] | None, NoDecode] = None
    client_id_param: str | None = Field(default="client_id", min_length=1)
    loop_stall_threshold: float = Field(default=0.5, gt=0)
    log_level: LogLevel = "INFO"
    log_connections: bool = False
    enable_metrics: bool = False
    max_send_queue: int | None = Field(default=1024 * 1024, gt=0)
    slow_consumer_policy: Literal["close", "drop_oldest", "drop_newest"] = "close"
    send_timeout: float | None = Field(default=10.0, gt=0)
    num_shards: int = Field(default=16, ge=1, le=4096)
    max_concurrent_broadcast: int = Field(default=16, ge=1)
    max_concurrent_cleanup: int = Field(default=128, ge=1)
    max_memory_per_connection: int | None = Field(default=None, gt=0)
    max_total_memory: int | None = Field(default=None, gt=0)
    memory_eviction_policy: Literal["lru", "fifo", "largest"] = "lru"
    rate_limit: float | None = Field(default=None, gt=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    secret_key: SecretStr | None = None
    reconnect_token_ttl: float = Field(default=300.0, gt=0)
    session_ttl: float = Field(default=120.0, gt=0)
    resume_buffer_size: int = Field(default=256 * 1024, gt=0)
    drain_timeout: float = Field(default=10.0, gt=0)
    drain_spread: float = Field(default=10.0, ge=0)
    drain_on_signal: bool = True
    backend_url: str = "memory://"
    backend_prefix: str = Field(default="asgi_ws", pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")
    presence_ttl: float = Field(default=10.0, ge=1)
    backend_buffer_size: int = Field(default=1024 * 1024, ge=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, then the old settings' environment variables (lowest priority)."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
            LegacyEnvSource(settings_cls),
        )

    @model_validator(mode="wrap")
    @classmethod
    def _legacy_settings(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        """Drop accepted old settings, and report refused ones next to every other problem."""
        return judge_legacy_settings(cls.__name__, data, handler)

    @field_validator(*DURATION_FIELDS, mode="before")
    @classmethod
    def _timedelta_is_seconds(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, timedelta):
            return value
        seconds = value.total_seconds()
        if info.field_name == "retry_after":
            if seconds != int(seconds):
                raise ValueError("must be whole seconds (it is sent in the Retry-After header)")
            return int(seconds)
        return seconds

    @field_validator(*_OPTIONAL_FIELDS, mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() == "":
            return None
        return value

    @field_validator("heartbeat_interval")
    @classmethod
    def _zero_interval_is_off(cls, value: float | None) -> float | None:
        return None if value == 0 else value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return None
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list: {exc.msg}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _normalise_origins(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        normalised = []
        for origin in value:
            origin = origin.strip().rstrip("/").lower()
            if origin in ("*", "null"):
                normalised.append(origin)
                continue
            canonical = normalise_origin(origin)
            if canonical is None or "://" not in origin:
                raise ValueError(
                    f"origin {origin!r} must be '*', 'null' or look like 'https://example.com[:port]'"
                )
            normalised.append(canonical)
        return normalised

    @field_validator("backend_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        value = value.strip()
        problem = backend_url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 bytes; use e.g. `openssl rand -hex 32`")
        return value

    @field_validator("memory_eviction_policy", "slow_consumer_policy", mode="before")
    @classmethod
    def _lower_policy(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            # The seed library's "oldest" is first-in-first-out.
            return "fifo" if value == "oldest" else value
        return value

    @field_validator("heartbeat_clients", mode="before")
    @classmethod
    def _lower_clients(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower().replace("-", "_")  # "opted-in" reads as well
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_together(self) -> StabilizerSettings:
        if self.ping_message == self.pong_message:
            raise ValueError("ping_message and pong_message must differ")
        return self

    @property
    def burst(self) -> int:
        """Token-bucket capacity: ``rate_limit_burst``, else the rate rounded up (at least 1)."""
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, math.ceil(self.rate_limit or 1))

    @property
    def heartbeat_enabled(self) -> bool:
        """Whether the middleware sends heartbeat pings at all."""
        return self.heartbeat_interval is not None


def load_settings(**overrides: Unpack[SettingsOverrides]) -> StabilizerSettings:
    """Build settings from the environment and ``overrides``, with errors that name env vars.

    Raises:
        SettingsError: a value is missing, of the wrong type, out of range, or unknown.
    """
    try:
        return StabilizerSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
            field = loc[0] if loc else "settings"
            message = error["msg"].removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
            if error["type"] == "extra_forbidden":
                problems.append((field, "no such setting", "unknown keyword argument"))
                continue
            if "input" in error and not isinstance(error["input"], dict):
                shown = error["input"]
                if field == "backend_url" and isinstance(shown, str):
                    shown = mask_url(shown)  # never a password in a log line
                message += f" (got {shown!r})"
            problems.append((field, env_var(field) if loc else ENV_PREFIX + "*", message))
        raise SettingsError(problems) from None


def unknown_env_vars(environ: dict[str, str] | None = None) -> list[str]:
    """``WS_STABILIZER_*`` variables that name no setting (usually a typo).

    The old settings of ``LEGACY_SETTINGS`` are not listed: loading judges them.
    """
    environ = dict(os.environ) if environ is None else environ
    known = {env_var(name) for name in (*StabilizerSettings.model_fields, *LEGACY_SETTINGS)}
    return sorted(
        key for key in environ if key.upper().startswith(ENV_PREFIX) and key.upper() not in known
    )
