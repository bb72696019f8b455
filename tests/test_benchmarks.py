"""Every benchmark scenario runs, at tiny size, against every subject installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_smoke(tmp_path: Path) -> None:
    """`python -m benchmarks.run --smoke` runs all six scenarios and writes its report."""
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert set(report["results"]) == {"echo", "fanout", "slow", "idle", "churn", "dead"}
    subjects = {"bare", "ours"} | ({"seed"} if not report["meta"]["skipped_subjects"] else set())
    for scenario, by_subject in report["results"].items():
        # echo, fanout and churn also measure a second bare server: the A/A check
        aa = {"bare2"} if scenario in ("echo", "fanout", "churn") else set()
        assert set(by_subject) == subjects | aa, scenario
    results = report["results"]
    assert results["echo"]["ours"]["round_trips"] > 0
    assert results["fanout"]["ours"]["20"]["incomplete_broadcasts"] == 0
    assert results["slow"]["ours"]["with_stall"]["incomplete_broadcasts"] == 0
    assert results["churn"]["ours"]["registered_after"] == 0
    assert results["dead"]["ours"]["detected_s"] is not None
    assert {c["target"].split(":")[0] for c in report["checks"]} == {
        "echo",
        "fanout 20",
        "slow",
        "idle",
        "churn",
        "dead",
    }
    assert (tmp_path / "latest.md").read_text().startswith("Run ")


def test_benchmarks_metrics_smoke(tmp_path: Path) -> None:
    """`--subjects bare,ours,metrics` (``metrics``: ours with ``enable_metrics``, not in the
    default run) runs echo and fanout at tiny size, and the report sets it beside bare and ours."""
    from benchmarks.run import installed

    if not installed("prometheus-client"):
        pytest.skip("prometheus-client is not installed: no metrics subject")
    command = [
        sys.executable, "-m", "benchmarks.run", "--smoke", "--scenarios", "echo,fanout",
        "--subjects", "bare,ours,metrics", "--out", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["meta"]["skipped_subjects"] == []
    assert "prometheus-client" in report["meta"]["versions"]
    results = report["results"]
    for scenario in ("echo", "fanout"):
        assert set(results[scenario]) == {"bare", "ours", "metrics", "bare2"}, scenario
    assert results["echo"]["metrics"]["round_trips"] > 0
    assert isinstance(results["echo"]["metrics"]["cpu_us_per_round_trip"], float)
    fanout = results["fanout"]["metrics"]["20"]
    assert isinstance(fanout["cpu_ms_per_broadcast"], float)
    assert isinstance(fanout["last_delivery_ms"], float)
    ratios = report["ratios"]
    assert "cpu_us_per_round_trip" in ratios["echo"]["metrics/bare"]
    assert "cpu_us_per_round_trip" in ratios["echo"]["metrics/ours"]
    assert "20.cpu_ms_per_broadcast" in ratios["fanout"]["metrics/bare"]
    assert "20.cpu_ms_per_broadcast" in ratios["fanout"]["metrics/ours"]
    header = (
        "| figure | bare | ours | metrics | bare2 | ours/bare | metrics/bare | metrics/ours |"
        " bare2/bare |"
    )
    assert (tmp_path / "latest.md").read_text().count(header) == 2


async def test_benchmarks_metrics_skipped_without_prometheus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without prometheus-client the ``metrics`` subject is skipped, with the reason printed,
    and the others run."""
    from benchmarks import run

    monkeypatch.setattr(run, "installed", lambda distribution: distribution != "prometheus-client")
    monkeypatch.setattr(run, "can_pin", lambda: False)  # leave this process's affinity alone
    argv = ["--smoke", "--scenarios", "echo", "--subjects", "bare,metrics", "--out", str(tmp_path)]
    report = await run.main(argv)
    assert "subject metrics: skipped, prometheus-client is not installed" in capsys.readouterr().out
    assert report["meta"]["skipped_subjects"] == ["metrics"]
    assert set(report["results"]["echo"]) == {"bare", "bare2"}


def test_benchmarks_instruction_count_smoke(tmp_path: Path) -> None:
    """`--meter instructions` runs the servers under callgrind and counts what echo costs, with
    the A/A check (a second bare server) beside the ratio; the scenarios it does not count are
    skipped with the reason. Skips without valgrind, except in CI, where that fails."""
    if shutil.which("valgrind") is None:
        reason = "valgrind is not installed: no instruction counts"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true, where it is installed")
        pytest.skip(reason)
    command = [
        sys.executable, "-m", "benchmarks.run", "--smoke", "--meter", "instructions",
        "--scenarios", "echo,idle", "--subjects", "bare,ours", "--out", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["meta"]["meter"] == "instructions"
    assert "idle" in report["meta"]["skipped_scenarios"]
    echo = report["results"]["echo"]
    assert set(echo) == {"bare", "ours", "bare2"}
    for subject in echo.values():
        # thousands of instructions per round trip: a Python server runs tens of thousands
        assert subject["cpu_us_per_round_trip"] > 10
    targets = {c["target"] for c in report["checks"]}
    assert "echo: instructions per round trip, A/A: |bare2/bare - 1|" in targets
    assert "Meter: **instructions**" in (tmp_path / "latest.md").read_text()


def test_callgrind_totals_are_read_from_a_dump(tmp_path: Path) -> None:
    from benchmarks.instructions import totals

    dump = tmp_path / "bare.123.1"
    dump.write_text("version: 1\ncmd: python\nevents: Ir\nfl=x\nfn=y\n3 10\ntotals: 123456\n")
    assert totals(dump) == 123456
    (tmp_path / "empty").write_text("events: Ir\n")
    with pytest.raises(ValueError, match="no totals"):
        totals(tmp_path / "empty")


def run_with_redis(scenario: str, out: Path, timeout: float) -> dict[str, Any]:
    """Run a scenario that needs ``redis-server`` (not in the default run) at smoke size for
    ``ours``; its report. Skips without redis-server, except in CI, where that fails."""
    if shutil.which("redis-server") is None:
        reason = f"redis-server is not installed: no {scenario} benchmark"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI=true, where it is installed")
        pytest.skip(reason)
    command = [
        sys.executable, "-m", "benchmarks.run", "--smoke", "--scenarios", scenario,
        "--subjects", "ours", "--out", str(out),
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report: dict[str, Any] = json.loads((out / "latest.json").read_text())
    return report


def test_benchmarks_cluster_smoke(tmp_path: Path) -> None:
    """`--scenarios cluster` (not in the default run: it needs redis-server) runs at tiny size:
    three workers on one private Redis against one worker in memory mode, nothing lost."""
    report = run_with_redis("cluster", tmp_path, timeout=300)
    cluster = report["results"]["cluster"]
    assert set(cluster) == {"memory", "cluster"}
    for mode in ("memory", "cluster"):
        assert cluster[mode]["incomplete_broadcasts"] == 0, mode
        assert cluster[mode]["latency"]["sent"] > 0, mode
        assert cluster[mode]["latency"]["missing"] == 0, mode
    assert cluster["cluster"]["workers"] == 3
    assert cluster["cluster"]["redis_cpu_us_per_delivered"] >= 0
    # Nothing lost is checked at any size; the speed targets are figures of a full run.
    lost = [c for c in report["checks"] if c["unit"] == "messages"]
    assert len(lost) == 2
    assert all(c["holds"] for c in lost), lost
    assert "| figure | memory | cluster | cluster/memory |" in (tmp_path / "latest.md").read_text()


def test_benchmarks_resume_smoke(tmp_path: Path) -> None:
    """`--scenarios resume` (not in the default run: it needs redis-server) runs at tiny size:
    the cluster fan-out with plain and with opted-in readers, and clients that drop from one
    worker and resume on another with exactly what was published while they were away."""
    report = run_with_redis("resume", tmp_path, timeout=120)
    resume = report["results"]["resume"]
    assert set(resume) == {"plain", "opted_in"}
    for mode in ("plain", "opted_in"):
        assert resume[mode]["incomplete_broadcasts"] == 0, mode
        assert resume[mode]["redis_commands_per_broadcast"] > 0, mode
    sockets = resume["opted_in"]["sockets"]
    assert (resume["plain"]["session_frames"], resume["opted_in"]["session_frames"]) == (0, sockets)
    replay = resume["opted_in"]["replay"]
    assert replay["failures"] == 0, replay["failure_reasons"]
    assert replay["resumed"] == replay["clients"] > 0
    assert replay["replayed_total"] == replay["clients"] * replay["published_while_away"]
    assert replay["missed_total"] == 0
    assert all(c["holds"] for c in report["checks"]), report["checks"]
    assert "| figure | plain | opted_in | opted_in/plain |" in (tmp_path / "latest.md").read_text()


@pytest.mark.parametrize(
    ("what", "subject", "log"), [("echo", "ours", "json"), ("churn", "ours", "console")]
)
def test_in_process_measurement_runs(what: str, subject: str, log: str) -> None:
    """`python -m benchmarks.inprocess` drives the app with no sockets and says what a unit
    cost (no figure is asserted)."""
    command = [sys.executable, "-m", "benchmarks.inprocess", what, subject, "300", "--log", log]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS_STABILIZER_")}
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    unit = "round trip" if what == "echo" else "connect + close"
    assert f"{subject} {what} (log {log}):" in run.stdout
    assert f"us CPU per {unit}" in run.stdout
