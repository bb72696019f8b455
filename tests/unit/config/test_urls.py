"""Backend URLs: which are accepted, what a bad one is told, and how passwords are hidden."""

from __future__ import annotations

import pytest

from asgi_ws_stabilizer.config.settings import load_settings
from asgi_ws_stabilizer.config.urls import BACKEND_SCHEMES, backend_url_problem, mask_url
from asgi_ws_stabilizer.errors import SettingsError


def test_the_schemes_are_memory_and_redis() -> None:
    """The accepted schemes are memory, redis, rediss and unix."""
    assert set(BACKEND_SCHEMES) == {"memory", "redis", "rediss", "unix"}


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "redis://host",
        "redis://127.0.0.1",
        "redis://:pw@host:6379/0",
        "redis://user:pw@host:6379/2",
        "rediss://:pw@redis.example.com:6380/0",
        "REDIS://host:6379",
        "unix:///run/redis/redis.sock",
    ],
)
def test_accepted_urls_have_no_problem(url: str) -> None:
    """A memory, redis, rediss or unix URL of the documented form is accepted."""
    assert backend_url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "advice"),
    [
        ("foo://x", "memory://, redis://"),
        ("redis://", "memory://, redis://"),
        ("unix://", "unix:///path"),
        ("host:6379", "memory://, redis://"),
        ("127.0.0.1:6379", "memory://, redis://"),
        ("", "memory://, redis://"),
        ("redis://h:abc", "number from 0 to 65535"),
        ("redis://h:70000", "number from 0 to 65535"),
        ("redis://:pw@/0", "redis://127.0.0.1:6379/0"),
        ("rediss://:6380", "rediss://127.0.0.1:6379/0"),
        ("memory://x", "nothing after the scheme"),
        ("unix://host", "unix:///run/redis/redis.sock"),
    ],
)
def test_rejected_urls_say_what_to_use(url: str, advice: str) -> None:
    """A URL that is not a backend URL gets a message naming the form to use."""
    problem = backend_url_problem(url)
    assert problem is not None
    assert advice in problem


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://alice:hunter2@host:6379/0", "redis://alice:***@host:6379/0"),
        ("rediss://alice:hunter2@redis.example.com", "rediss://alice:***@redis.example.com"),
        ("redis://:p@ss@w0rd@host:6379/3", "redis://:***@host:6379/3"),
        ("redis://alice:p@ss@host", "redis://alice:***@host"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    """The password (one containing ``@`` too) becomes ``***``; user, host, port and path stay."""
    assert mask_url(url) == masked
    assert "hunter2" not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "redis://host",
        "redis://host:6379/0",
        "redis://alice@host:6379/0",
        "rediss://redis.example.com:6380",
        "unix:///run/redis/redis.sock",
    ],
)
def test_mask_url_leaves_urls_without_password_alone(url: str) -> None:
    """A URL without a password is shown as it is."""
    assert mask_url(url) == url


def test_load_settings_accepts_a_redis_url() -> None:
    """``load_settings`` keeps a good backend URL as given."""
    settings = load_settings(backend_url="redis://:pw@host:6379/0")
    assert settings.backend_url == "redis://:pw@host:6379/0"


def test_load_settings_names_the_env_var_of_a_bad_url() -> None:
    """A bad backend URL raises ``SettingsError`` naming ``WS_STABILIZER_BACKEND_URL``."""
    with pytest.raises(SettingsError) as info:
        load_settings(backend_url="foo://x")
    assert "WS_STABILIZER_BACKEND_URL" in str(info.value)
    assert [(field, env) for field, env, _ in info.value.problems] == [
        ("backend_url", "WS_STABILIZER_BACKEND_URL")
    ]


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@host:abc/0",
        "redis://alice:hunter2@host:99999",
        "redis://:hunter2@/0",
        "redis://:hunt@er2@host:abc",
    ],
)
def test_load_settings_error_never_shows_the_password(url: str) -> None:
    """The error of a bad URL with a password names the env var and shows no password."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_BACKEND_URL") as info:
        load_settings(backend_url=url)
    assert "hunter2" not in str(info.value)
    assert "er2" not in str(info.value)
    assert "hunt" not in str(info.value)
    assert "***" in str(info.value)


def test_load_settings_reads_the_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad ``WS_STABILIZER_BACKEND_URL`` in the environment is named, password hidden."""
    monkeypatch.setenv("WS_STABILIZER_BACKEND_URL", "redis://:hunter2@host:abc")
    with pytest.raises(SettingsError, match="WS_STABILIZER_BACKEND_URL") as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_load_settings_error_hides_the_password_of_a_url_with_spaces_around() -> None:
    """A bad URL with blanks around it (a careless env file) still shows no password."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_BACKEND_URL") as info:
        load_settings(backend_url=" redis://:hunter2@host:abc ")
    assert "hunter2" not in str(info.value)


def test_load_settings_error_hides_a_password_with_a_slash() -> None:
    """A password with an unescaped ``/`` (which breaks the URL) is not shown in the error."""
    with pytest.raises(SettingsError, match="WS_STABILIZER_BACKEND_URL") as info:
        load_settings(backend_url="redis://:hunter/2@host:6379/0")
    assert "hunter" not in str(info.value)
