"""The ``WS_STABILIZER_*`` environment variables: their prefix and the variable of each setting."""

from __future__ import annotations

__all__ = ["ENV_PREFIX", "env_var"]

ENV_PREFIX = "WS_STABILIZER_"
"""The prefix of every setting's environment variable."""


def env_var(field: str) -> str:
    """The environment variable that sets ``field``."""
    return ENV_PREFIX + field.upper()
