"""Choosing the backend from ``backend_url``: ``memory://`` or Redis (extra ``[redis]``)."""

from __future__ import annotations

import importlib

from ..config.env import env_var
from ..config.settings import StabilizerSettings
from ..errors import SettingsError
from ..observe.events import Events
from .base import Backend
from .memory import MemoryBackend


def open_backend(settings: StabilizerSettings, events: Events) -> Backend:
    """The backend ``settings.backend_url`` names (not connected yet: ``start`` connects).

    Raises:
        SettingsError: Redis mode without ``secret_key`` (tokens must verify on every process),
            or a Redis URL without redis-py installed.
    """
    scheme = settings.backend_url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryBackend(
            session_ttl=settings.session_ttl, resume_buffer_size=settings.resume_buffer_size
        )
    if settings.secret_key is None:
        raise SettingsError(
            [
                (
                    "secret_key",
                    env_var("secret_key"),
                    f"backend_url={scheme}://... needs a secret key shared by every process "
                    "(a resume token made by one must verify on another); "
                    "use e.g. `openssl rand -hex 32`",
                )
            ]
        )
    try:
        module = importlib.import_module(".redis_backend", __package__)
    except ImportError as exc:
        raise SettingsError(
            [
                (
                    "backend_url",
                    env_var("backend_url"),
                    f"{scheme}:// needs redis-py: pip install 'asgi_ws_stabilizer[redis]' ({exc})",
                )
            ]
        ) from None
    backend: Backend = module.RedisBackend(settings, events)
    return backend
