"""Random ids: connection ids, generated client ids and session ids (16 hex digits each)."""

from __future__ import annotations

import os
import secrets


def new_id() -> str:
    """A fresh random id (16 hex digits)."""
    return secrets.token_hex(8)


def new_ids() -> tuple[str, str]:
    """Two fresh random ids (connection, generated client): one read of the OS's random
    source instead of two, as every socket needs both."""
    raw = os.urandom(16).hex()  # secrets.token_hex(16), without its two Python-level calls
    return raw[:16], raw[16:]
