"""Counting instructions instead of CPU time: each server under valgrind's callgrind.

CPU time on a shared machine swings by tens of percent from run to run; the number of instructions
a server executes for the same work hardly moves (the A/A check, bare against a second bare
server, shows by how much). With ``--meter instructions`` every server runs under ``valgrind
--tool=callgrind`` with counting off. The scenarios read ``Server.cpu()`` in pairs around the
work they measure: the first of a pair switches counting on, the second reads what was counted
(``callgrind_control --dump``) and switches it off again, so the rest of a scenario (opening and
closing thousands of sockets) runs at valgrind's uninstrumented pace.

The figures keep their names: with this meter ``Server.cpu()`` answers in giga-instructions, so a
``cpu_us_...`` figure is thousands of instructions and a ``cpu_ms_...`` figure millions. Valgrind
runs a server 20 to 50 times slower: the scenarios stretch every wait (``scenarios.SLOWDOWN``)
and run smaller sizes (``scenarios.INSTRUCTIONS``), and the timings they report in this mode
(latencies, time to last delivery) are the slowed server's, not figures to compare.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

SLOWDOWN = 30.0
"""About how much slower a server runs under callgrind (scenarios stretch their waits by it)."""


def available() -> str | None:
    """Why instructions cannot be counted here, or ``None``."""
    for program in ("valgrind", "callgrind_control"):
        if shutil.which(program) is None:
            return f"{program} is not installed (apt-get install valgrind)"
    return None


def wrap(command: list[str], out_dir: Path, subject: str) -> list[str]:
    """``command`` under callgrind, counting off until ``switch_on``."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--quiet",
        f"--callgrind-out-file={out_dir / subject}.%p",
        *command,
    ]


def control(pid: int, *args: str) -> None:
    """``callgrind_control ARGS PID``: valgrind picks the command up at its next poll."""
    subprocess.run(
        ["callgrind_control", *args, str(pid)], capture_output=True, check=True, timeout=120
    )


class Count:
    """The instructions one server process executed while counting was on."""

    def __init__(self, pid: int, out_dir: Path, subject: str) -> None:
        self.pid = pid
        self.pattern = str(out_dir / f"{subject}.{pid}.*")
        self.read: set[str] = set()
        self.total = 0
        self.counting = False

    def now(self) -> int:
        """The instructions counted so far; switches counting on if it was off (the start of a
        measured window), else off (its end)."""
        if not self.counting:
            control(self.pid, "--zero")
            control(self.pid, "--instr=on")
            self.counting = True
            return self.total
        control(self.pid, "--dump")
        control(self.pid, "--instr=off")
        self.counting = False
        for path in sorted(set(glob.glob(self.pattern)) - self.read, key=os.path.getmtime):
            self.read.add(path)
            self.total += totals(Path(path))
        return self.total


def totals(path: Path) -> int:
    """The instructions (``Ir``) of one callgrind dump."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {path}")
