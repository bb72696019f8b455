"""Run the benchmarks: every scenario against every subject, in one process, one command.

    python -m benchmarks.run                 # the full run (about 15 minutes)
    python -m benchmarks.run --quick         # smaller sizes, one repeat
    python -m benchmarks.run --scenarios echo,fanout --subjects bare,ours
    python -m benchmarks.run --scenarios echo,fanout --subjects bare,ours,metrics  # metrics on
    python -m benchmarks.run --scenarios cluster --subjects ours   # needs redis-server
    python -m benchmarks.run --scenarios resume --subjects ours    # needs redis-server

Writes ``benchmarks/results/latest.json`` and ``latest.md`` (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from . import cluster, instructions, resume, scenarios, server
from .redis_server import redis_server_path
from .scenarios import Sizes, median_of
from .server import CLIENT_CORE, Server, can_pin
from .targets import checks, ratio

SUBJECTS = ("bare", "ours", "seed")
"""The default run; ``wrap`` and ``metrics`` (``ours`` with metrics on) are asked for by name."""
OPTIONAL_SUBJECTS = {
    "seed": (
        "fastapi-websocket-stabilizer",
        'the seed library is not installed (pip install -e ".[bench]")',
    ),
    "metrics": (
        "prometheus-client",
        'prometheus-client is not installed (pip install -e ".[prometheus]")',
    ),
}
"""Subjects that need a distribution the project does not: ``{subject: (distribution, why it
is skipped without it)}``."""
SCENARIOS = ("echo", "fanout", "slow", "idle", "churn", "dead")
EXTRA_SCENARIOS = ("cluster", "resume")
"""Not in the default run: they need ``redis-server`` (``--scenarios cluster,resume``)."""
RESULTS = Path(__file__).resolve().parent / "results"
AA_SCENARIOS = ("echo", "fanout", "churn")
"""Scenarios measured with a second bare server too (``bare2``): the A/A check of the method."""
COUNTED_SCENARIOS = AA_SCENARIOS
"""What ``--meter instructions`` measures (the others are about memory, time or Redis)."""


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def subject_skip_reason(subject: str) -> str | None:
    """Why a subject cannot run here (an optional distribution it needs is missing), or
    ``None``."""
    if subject not in OPTIONAL_SUBJECTS:
        return None
    distribution, reason = OPTIONAL_SUBJECTS[subject]
    return None if installed(distribution) else reason


async def interleaved(
    subjects: list[str], repeats: int, measure: Callable[[Server], Awaitable[dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Every subject's server runs at once; each repeat measures each subject in turn (the
    order rotating), so slow drifts of the machine hit every subject alike."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in subjects}
    with contextlib.ExitStack() as stack:
        servers = {s: stack.enter_context(Server(s)) for s in subjects}
        for repeat in range(repeats):
            order = subjects[repeat % len(subjects) :] + subjects[: repeat % len(subjects)]
            for subject in order:
                runs[subject].append(await measure(servers[subject]))
    return {s: median_of(r) for s, r in runs.items()}


async def run_scenario(
    scenario: str, subjects: list[str], sizes: Sizes, fast_heartbeat: bool
) -> dict[str, Any]:
    """One scenario for every subject: ``{subject: figures}`` (with ``bare2``, the A/A check,
    where the scenario has one and ``bare`` runs)."""
    if scenario in AA_SCENARIOS and "bare" in subjects and "bare2" not in subjects:
        subjects = [*subjects, "bare2"]
    if scenario == "echo":
        return await interleaved(
            subjects, sizes.repeats, lambda server: scenarios.echo(server, sizes)
        )
    if scenario == "cluster":
        executable = redis_server_path()
        assert executable is not None
        return await cluster.cluster(executable, sizes)
    if scenario == "resume":
        executable = redis_server_path()
        assert executable is not None
        return await resume.resume(executable, sizes)
    if scenario == "fanout":
        by_size: dict[str, dict[str, dict[str, Any]]] = {}
        for n in sizes.fanout_sockets:

            def measure(server: Server, n: int = n) -> Awaitable[dict[str, Any]]:
                return scenarios.fanout(server, n, sizes.fanout_broadcasts)

            by_size[str(n)] = await interleaved(subjects, sizes.repeats, measure)
        return {s: {n: by_size[n][s] for n in by_size} for s in subjects}
    out: dict[str, Any] = {}
    for subject in subjects:
        env: dict[str, str] = {}
        args: list[str] = []
        if scenario == "dead" and fast_heartbeat:
            env = {"WS_STABILIZER_HEARTBEAT_INTERVAL": "1", "WS_STABILIZER_HEARTBEAT_TIMEOUT": "1"}
            args = ["--ws-ping-interval", "1", "--ws-ping-timeout", "1"]
        started = time.monotonic()
        with Server(subject, env, *args) as server:
            if scenario == "slow":
                calm = await scenarios.fanout(server, sizes.slow_sockets, sizes.slow_broadcasts)
                stalled = await scenarios.fanout(
                    server, sizes.slow_sockets, sizes.slow_broadcasts, stalled=True
                )
                out[subject] = {"without_stall": calm, "with_stall": stalled}
            elif scenario == "idle":
                out[subject] = await scenarios.idle(server, sizes)
            elif scenario == "churn":
                out[subject] = await scenarios.churn(server, sizes)
            elif scenario == "dead":
                out[subject] = await scenarios.dead(server, sizes)
            else:
                raise ValueError(f"unknown scenario {scenario!r}")
        print(f"  {scenario} {subject}: {time.monotonic() - started:.1f} s", flush=True)
    return out


def skip_reason(scenario: str, subjects: list[str]) -> str | None:
    """Why a scenario cannot run here, or ``None``."""
    if server.CALLGRIND is not None and scenario not in COUNTED_SCENARIOS:
        return "--meter instructions counts the work of echo, fanout and churn only"
    if scenario not in EXTRA_SCENARIOS:
        return None
    if "ours" not in subjects:
        return f"{scenario} measures the ours subject only, and --subjects leaves it out"
    if redis_server_path() is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


def ratio_pairs(subjects: list[str]) -> list[tuple[str, str]]:
    """The ratio columns of a scenario's table, ``(a, b)`` for ``a / b``."""
    if {"cluster", "memory"} <= set(subjects):
        return [("cluster", "memory")]
    if {"plain", "opted_in"} <= set(subjects):
        return [("opted_in", "plain")]
    pairs = [("ours", "bare"), *([("ours", "before")] if "before" in subjects else [])]
    if "metrics" in subjects:
        pairs += [("metrics", b) for b in ("bare", "ours") if b in subjects]
    if "bare2" in subjects:
        pairs.append(("bare2", "bare"))  # the A/A check: what the method can resolve
    return pairs


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested figures as ``{"a.b.c": value}``, in order."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        out |= flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def pair_ratio(per: dict[str, dict[str, Any]], a: str, b: str, key: str) -> float | None:
    """``a / b`` of figure ``key``, when both are numbers."""
    x, y = per.get(a, {}).get(key), per.get(b, {}).get(key)
    if isinstance(x, int | float) and isinstance(y, int | float):
        return ratio(x, y)
    return None


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """The ratio columns of the tables, for the JSON: ``{scenario: {"a/b": {figure: a / b}}}``
    (``metrics/bare`` and ``metrics/ours`` among them when ``metrics`` ran)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, by_subject in results.items():
        per = {s: flatten(f) for s, f in by_subject.items()}
        keys = list(dict.fromkeys(k for figures in per.values() for k in figures))
        out[scenario] = {}
        for a, b in ratio_pairs(list(by_subject)):
            if a not in per or b not in per:
                continue
            shown = {k: pair_ratio(per, a, b, k) for k in keys}
            out[scenario][f"{a}/{b}"] = {k: round(v, 4) for k, v in shown.items() if v is not None}
    return out


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    meta = report["meta"]
    lines = [
        f"Run {meta['date']} on {meta['machine']}, Python {meta['python']}, uvicorn "
        f"{meta['versions'].get('uvicorn')} (websockets-sansio), "
        f"{'server and clients pinned to separate cores' if meta['pinned'] else 'not pinned'}, "
        f"sizes `{meta['mode']}`.",
        *(
            [
                "",
                "Meter: **instructions** counted under valgrind's callgrind (a `cpu_us` figure is "
                "thousands of instructions, a `cpu_ms` figure millions; times are the slowed "
                "server's).",
            ]
            if meta.get("meter") == "instructions"
            else []
        ),
        "",
        "| target | figure | limit | holds |",
        "|---|---|---|---|",
    ]
    for c in report["checks"]:
        lines.append(
            f"| {c['target']} | {c['figure']} {c['unit']} | {c['limit']} {c['unit']} | "
            f"{'yes' if c['holds'] else '**no**'} |"
        )
    lines.append("")
    for scenario, by_subject in report["results"].items():
        subjects = list(by_subject)
        pairs = ratio_pairs(subjects)
        lines += [
            f"### {scenario}",
            "",
            "| figure | "
            + " | ".join(subjects)
            + " | "
            + " | ".join(f"{a}/{b}" for a, b in pairs)
            + " |",
            "|---|" + "---|" * (len(subjects) + len(pairs)),
        ]
        per = {s: flatten(f) for s, f in by_subject.items()}
        keys = list(dict.fromkeys(k for figures in per.values() for k in figures))
        for key in keys:
            cells = [per[s].get(key) for s in subjects]
            shown = [pair_ratio(per, a, b, key) for a, b in pairs]
            lines.append(f"| {key} | " + " | ".join(_fmt(c) for c in [*cells, *shown]) + " |")
        lines.append("")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, one repeat")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite's run)")
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS + EXTRA_SCENARIOS)} "
        f"(default: all but {', '.join(EXTRA_SCENARIOS)})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--meter",
        choices=("cpu", "instructions"),
        default="cpu",
        help="what a unit of work costs: server CPU time (default), or instructions counted "
        "under valgrind's callgrind (repeatable on a busy machine; echo, fanout and churn only)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of an earlier version: adds the subject `before` (its `ours` app), "
        "measured in the same run, and an ours/before column",
    )
    args = parser.parse_args(argv)
    sizes = scenarios.SMOKE if args.smoke else scenarios.QUICK if args.quick else scenarios.FULL
    counting = args.meter == "instructions"
    if counting:
        why = instructions.available()
        if why is not None:
            raise SystemExit(f"--meter instructions: {why}")
        server.CALLGRIND = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
        scenarios.SLOWDOWN = instructions.SLOWDOWN
        if not args.smoke:
            sizes = scenarios.INSTRUCTIONS
    fast_heartbeat = args.smoke
    subjects = [s for s in args.subjects.split(",") if s]
    if args.baseline is not None:
        server.BASELINE = args.baseline.resolve()
        if "before" not in subjects:
            subjects.append("before")
    skipped: list[str] = []
    for subject in subjects:
        why = subject_skip_reason(subject)
        if why is not None:
            print(f"subject {subject}: skipped, {why}", flush=True)
            skipped.append(subject)
    subjects = [s for s in subjects if s not in skipped]
    if can_pin():
        os.sched_setaffinity(0, {CLIENT_CORE})
    results: dict[str, dict[str, Any]] = {}
    skipped_scenarios: dict[str, str] = {}
    for scenario in [s for s in args.scenarios.split(",") if s]:
        reason = skip_reason(scenario, subjects)
        if reason is not None:
            print(f"{scenario}: skipped, {reason}", flush=True)
            skipped_scenarios[scenario] = reason
            continue
        started = time.monotonic()
        results[scenario] = await run_scenario(scenario, subjects, sizes, fast_heartbeat)
        print(f"{scenario}: {time.monotonic() - started:.1f} s", flush=True)
    versions = {
        name: importlib.metadata.version(name)
        for name in ("uvicorn", "starlette", "websockets", "asgi_ws_stabilizer")
    }
    if "metrics" in subjects:
        versions["prometheus-client"] = importlib.metadata.version("prometheus-client")
    report: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "python": platform.python_version(),
            "versions": versions,
            "pinned": can_pin(),
            "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
            "meter": args.meter,
            "sizes": vars(sizes) if hasattr(sizes, "__dict__") else {},
            "skipped_subjects": skipped,
            "skipped_scenarios": skipped_scenarios,
        },
        "results": results,
    }
    report["checks"] = checks(results, fast_heartbeat, args.meter)
    report["ratios"] = ratios(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "latest.md").write_text(markdown(report) + "\n")
    print(markdown(report))
    if server.CALLGRIND is not None:
        shutil.rmtree(server.CALLGRIND, ignore_errors=True)
    return report


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
