"""open_backend: the backend ``backend_url`` names, and the errors of a Redis URL it cannot open."""

from __future__ import annotations

import sys

import pytest

from asgi_ws_stabilizer import Hub
from asgi_ws_stabilizer.backends.memory import MemoryBackend
from asgi_ws_stabilizer.backends.select import open_backend
from asgi_ws_stabilizer.config.settings import load_settings
from asgi_ws_stabilizer.errors import SettingsError
from asgi_ws_stabilizer.observe.events import Events
from asgi_ws_stabilizer.observe.log import EventLog
from asgi_ws_stabilizer.observe.stats import Stats

SECRET = "0123456789abcdef0123456789abcdef"


def events() -> Events:
    """Events with a log and the counters, as a hub builds them."""
    return Events(EventLog(), [Stats()], stall_threshold=0.5)


def test_memory_url_gives_a_memory_backend() -> None:
    """``memory://`` opens the in-memory backend, no secret needed."""
    backend = open_backend(load_settings(backend_url="memory://"), events())
    assert isinstance(backend, MemoryBackend)
    assert backend.describe()["kind"] == "memory"


def test_default_settings_give_a_memory_backend() -> None:
    """Without a ``backend_url`` the backend is the in-memory one."""
    assert isinstance(open_backend(load_settings(), events()), MemoryBackend)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example.com", "unix:///tmp/r.sock"]
)
def test_redis_without_secret_key_names_the_secret_env_var(url: str) -> None:
    """A Redis URL without ``secret_key`` raises ``SettingsError`` naming its env var."""
    settings = load_settings(backend_url=url)
    with pytest.raises(SettingsError, match="WS_STABILIZER_SECRET_KEY") as info:
        open_backend(settings, events())
    assert [field for field, _, _ in info.value.problems] == ["secret_key"]
    assert "pw" not in str(info.value)


def test_redis_with_secret_key_gives_a_redis_backend() -> None:
    """A Redis URL with a secret opens the Redis backend, not yet connected."""
    from asgi_ws_stabilizer.backends.redis_backend import RedisBackend

    settings = load_settings(backend_url="redis://:pw@127.0.0.1:6379/0", secret_key=SECRET)
    backend = open_backend(settings, events())
    assert isinstance(backend, RedisBackend)
    described = backend.describe()
    assert described["kind"] == "redis"
    assert described["state"] == "connecting"
    assert described["url"] == "redis://:***@127.0.0.1:6379/0"


def test_redis_without_redis_py_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py, a Redis URL raises ``SettingsError`` naming the URL's env var and the
    pip extra to install."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "asgi_ws_stabilizer.backends.redis_backend", raising=False)
    settings = load_settings(backend_url="redis://127.0.0.1:6379/0", secret_key=SECRET)
    with pytest.raises(SettingsError, match="WS_STABILIZER_BACKEND_URL") as info:
        open_backend(settings, events())
    assert "pip install 'asgi_ws_stabilizer[redis]'" in str(info.value)
    assert [field for field, _, _ in info.value.problems] == ["backend_url"]


def test_memory_needs_no_redis_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without redis-py the in-memory backend still opens."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.delitem(sys.modules, "asgi_ws_stabilizer.backends.redis_backend", raising=False)
    assert isinstance(open_backend(load_settings(), events()), MemoryBackend)


def test_hub_with_redis_url_and_no_secret_is_refused() -> None:
    """``Hub(backend_url=redis://...)`` without a secret raises ``SettingsError`` at once."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_SECRET_KEY"):
        Hub(backend_url="redis://127.0.0.1:1/0")
