"""The Prometheus sink's logic: label values, the copy of the per-message counts, the files of
dead processes, and turning metrics on (with and without prometheus-client)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from asgi_ws_stabilizer import SettingsError
from asgi_ws_stabilizer.observe import prometheus
from asgi_ws_stabilizer.observe.metrics import metrics_sinks
from asgi_ws_stabilizer.observe.prometheus import (
    CLOSE_CODES,
    NAMESPACE,
    PrometheusSink,
    close_label,
    forget_dead_processes,
)
from asgi_ws_stabilizer.observe.traffic import Traffic


def value(name: str, **labels: str) -> float:
    """The current value of one of our series (0 when it has no sample yet)."""
    found = REGISTRY.get_sample_value(f"{NAMESPACE}_{name}", labels)
    return 0.0 if found is None else found


def series() -> dict[str, int]:
    """How many samples each of our metric families has now."""
    counts: dict[str, int] = {}
    for family in REGISTRY.collect():
        if family.name.startswith(NAMESPACE + "_"):
            counts[family.name] = len(family.samples)
    return counts


def stats(**counts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"messages_in": 0, "messages_out": 0, "bytes_in": 0, "bytes_out": 0}
    return {**base, **counts}


def test_close_codes_outside_the_known_set_are_other() -> None:
    assert close_label(1000) == "1000"
    assert close_label(4408) == "4408"
    assert close_label(1006) == "1006"
    assert close_label(4000) == "other"
    assert close_label(3999) == "other"
    assert close_label(1234567) == "other"
    assert {1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013, 4408, 4409, 4429} == set(
        CLOSE_CODES
    )


def test_every_fixed_label_value_exists_at_zero() -> None:
    """Rates and sums have a series to start from before the first event of its kind."""
    PrometheusSink()
    for reason in ("origin_not_allowed", "bad_resume_seq", "backend_unavailable", "other"):
        assert (
            REGISTRY.get_sample_value("asgi_ws_connections_rejected_total", {"reason": reason})
            is not None
        )
    for code in ("1000", "4408", "other"):
        for by in ("client", "app", "middleware", "unknown"):
            labels = {"code": code, "closed_by": by}
            assert REGISTRY.get_sample_value("asgi_ws_connections_closed_total", labels) is not None
    for result in ("resumed", "token_spent", "seq_ahead"):
        labels = {"result": result}
        assert REGISTRY.get_sample_value("asgi_ws_session_resumes_total", labels) is not None
    assert REGISTRY.get_sample_value("asgi_ws_sends_total", {"kind": "send_to"}) is not None


def test_events_reach_their_metrics() -> None:
    sink = PrometheusSink()
    before = {
        "open": value("connections"),
        "accepted": value("connections_accepted_total"),
        "closed": value("connections_closed_total", code="4408", closed_by="middleware"),
        "other": value("connections_closed_total", code="other", closed_by="client"),
        "rejected": value("connections_rejected_total", reason="ip_limit"),
        "dropped": value("slow_consumer_dropped_messages_total", policy="drop_oldest"),
        "slow_closes": value("slow_consumer_closes_total"),
        "resumed": value("session_resumes_total", result="token_spent"),
        "rtt": value("heartbeat_rtt_seconds_count"),
        "fanout": value("fanout_duration_seconds_count", kind="publish"),
        "reconnects": value("backend_reconnects_total"),
    }
    sink.opened()
    sink.opened()
    assert value("connections") == before["open"] + 2
    sink.closed(4408, "middleware", 3.0, Traffic())
    sink.closed(4321, "client", 1.0, Traffic())
    sink.rejected("ip_limit")
    sink.slow_consumer("drop_oldest", 7)
    sink.slow_consumer("close", 0)
    sink.resumed("token_spent")
    sink.rtt(0.02)
    sink.fanned_out("publish", 0.001)
    sink.backend_state("reconnecting")
    sink.backend_state("connected")
    assert value("connections") == before["open"]
    assert value("connections_accepted_total") == before["accepted"] + 2
    labels = {"code": "4408", "closed_by": "middleware"}
    assert value("connections_closed_total", **labels) == before["closed"] + 1
    labels = {"code": "other", "closed_by": "client"}
    assert value("connections_closed_total", **labels) == before["other"] + 1
    assert value("connections_rejected_total", reason="ip_limit") == before["rejected"] + 1
    labels = {"policy": "drop_oldest"}
    assert value("slow_consumer_dropped_messages_total", **labels) == before["dropped"] + 7
    assert value("slow_consumer_closes_total") == before["slow_closes"] + 1
    assert value("session_resumes_total", result="token_spent") == before["resumed"] + 1
    assert value("heartbeat_rtt_seconds_count") == before["rtt"] + 1
    assert value("fanout_duration_seconds_count", kind="publish") == before["fanout"] + 1
    assert value("backend_reconnects_total") == before["reconnects"] + 1
    assert value("backend_connected") == 1


def test_label_values_stay_bounded_whatever_the_input() -> None:
    """A thousand close codes, and reasons, results and kinds we never made, add no series."""
    sink = PrometheusSink()
    shape = series()
    for i in range(1000):
        sink.closed(3000 + i, f"peer-{i}", 0.5, Traffic())
        sink.rejected(f"reason-{i}")
        sink.resumed(f"result-{i}")
        sink.sent(f"kind-{i}")
        sink.fanned_out(f"kind-{i}", 0.001)
        sink.slow_consumer(f"policy-{i}", 1)
    assert series() == shape


def test_the_copy_takes_what_grew_and_never_goes_back() -> None:
    """Per-message counts are copied from ``stats()``; a count that falls (frames dropped from
    an outbox after they were counted) is not taken again until it passes its highest copy."""
    sink = PrometheusSink()
    out = value("messages_total", direction="out")
    into = value("payload_bytes_total", direction="in")
    sink.sample(stats(messages_out=10, bytes_in=100))
    assert value("messages_total", direction="out") == out + 10
    assert value("payload_bytes_total", direction="in") == into + 100
    sink.sample(stats(messages_out=8, bytes_in=100))
    assert value("messages_total", direction="out") == out + 10
    sink.sample(stats(messages_out=12, bytes_in=150))
    assert value("messages_total", direction="out") == out + 12
    assert value("payload_bytes_total", direction="in") == into + 150


def test_the_copy_sets_the_gauges() -> None:
    sink = PrometheusSink()
    sink.sample(stats(admitting=False, backend={"state": "reconnecting", "buffered": 512}))
    assert value("admitting") == 0
    assert value("backend_connected") == 0
    assert value("backend_buffered_bytes") == 512
    sink.sample(stats(admitting=True, backend={"state": "connected", "buffered": 0}))
    assert value("admitting") == 1
    assert value("backend_connected") == 1


def dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


def test_live_gauge_files_of_dead_processes_are_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed by SIGKILL leaves its files; its live gauges are removed, its counters
    (part of the totals) and the files of live processes stay."""
    gone, here = dead_pid(), os.getpid()
    names = [
        f"gauge_livesum_{gone}.db",
        f"gauge_livemax_{gone}.db",
        f"counter_{gone}.db",
        f"gauge_livesum_{here}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert forget_dead_processes() == [gone]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone}.db", f"gauge_livesum_{here}.db"]
    )
    assert forget_dead_processes() == []


def test_nothing_is_forgotten_without_multiprocess_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert forget_dead_processes() == []


def test_metrics_off_adds_no_sink() -> None:
    assert metrics_sinks(False) == []
    (sink,) = metrics_sinks(True)
    assert isinstance(sink, PrometheusSink)


def test_metrics_on_without_prometheus_client_names_the_env_var(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if the extra were not installed: start-up fails, naming the variable and the fix."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, prometheus.__name__)
    with pytest.raises(SettingsError) as info:
        metrics_sinks(True)
    ((field, env, message),) = info.value.problems
    assert (field, env) == ("enable_metrics", "WS_STABILIZER_ENABLE_METRICS")
    assert "asgi_ws_stabilizer[prometheus]" in message


def test_metrics_route_without_prometheus_client_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from asgi_ws_stabilizer import metrics_route

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, prometheus.__name__)
    with pytest.raises(ImportError, match=r"asgi_ws_stabilizer\[prometheus\]"):
        metrics_route()


OFF = textwrap.dedent(
    """
    import sys
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from asgi_ws_stabilizer import StabilizerMiddleware

    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    app.add_middleware(StabilizerMiddleware)
    with TestClient(app) as client, client.websocket_connect("/ws") as socket:
        socket.send_text("hi")
        assert socket.receive_text() == "hi"
    print(sorted(m for m in sys.modules if m.startswith("prometheus_client")))
    """
)


def test_metrics_off_imports_nothing_of_prometheus_client() -> None:
    """A whole app's life with metrics off (the default) loads no module of prometheus-client,
    although it is installed here."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", OFF],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("WS_")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
