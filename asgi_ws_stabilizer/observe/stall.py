"""Where the event loop's thread was during a stall: a sample of its stack (aio/watchdog.py
takes them; ``event_loop_blocked`` and ``event_loop_still_blocked`` carry them)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import FrameType

STACK_DEPTH = 30
"""Frames kept per sample, innermost first."""


@dataclass(frozen=True)
class StallSample:
    """Where the loop thread was during a stall."""

    file: str
    line: int
    function: str
    stack: tuple[str, ...]
    """``file:line in function``, innermost first."""
    kind: str
    """``code`` (Python code held the loop) or ``parked`` (the loop sat in its selector: the
    cause is outside it, e.g. another thread holding the GIL, or a starved CPU)."""

    def fields(self) -> dict[str, object]:
        """The event's fields."""
        return {
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "frames": list(self.stack[:10]),
            "kind": self.kind,
        }


def sample(thread_id: int) -> StallSample | None:
    """The stack of thread ``thread_id`` now (``None`` if it has no Python frame)."""
    frame: FrameType | None = sys._current_frames().get(thread_id)
    frames: list[tuple[str, int, str]] = []
    while frame is not None and len(frames) < STACK_DEPTH:
        code = frame.f_code
        frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    if not frames:
        return None
    file, line, function = frames[0]
    parked = file.endswith("selectors.py") or function in ("select", "poll", "_run_once")
    return StallSample(
        file=file,
        line=line,
        function=function,
        stack=tuple(f"{f}:{n} in {fn}" for f, n, fn in frames),
        kind="parked" if parked else "code",
    )
