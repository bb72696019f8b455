"""Backends: how hub sends reach the sockets of every process, and where sessions are kept.

``base.Backend`` is the interface; ``memory.MemoryBackend`` (one process, today's behaviour) is the
default and the test double.
"""

from .base import Backend, LocalDelivery
from .memory import MemoryBackend

__all__ = ["Backend", "LocalDelivery", "MemoryBackend"]
