"""The targets a run is checked against, each with its figure and whether it holds.

Ratios are ``ours / bare`` from the same run. Beside them, the A/A check: a second bare server
(``bare2``) measured the same way, whose ratio to ``bare`` should be 1 and shows what the method
can resolve; a target closer than that to its limit is not decided by the run.
"""

from __future__ import annotations

from typing import Any

UVICORN_KEEPALIVE = (20.0, 20.0)
"""uvicorn's ``--ws-ping-interval`` and ``--ws-ping-timeout`` defaults."""
AA_LIMIT = 0.02
"""How far from 1 the A/A ratio (bare2/bare) may be for the run to tell a 5 % difference."""


def ratio(ours: float | None, bare: float | None) -> float | None:
    if ours is None or bare is None or bare == 0:
        return None
    return ours / bare


def checks(
    results: dict[str, dict[str, Any]], fast_heartbeat: bool, meter: str = "cpu"
) -> list[dict[str, Any]]:
    """The targets of the performance issue, each with its figure and whether it holds."""
    out: list[dict[str, Any]] = []

    def check(name: str, figure: float | None, limit: float, unit: str = "x") -> None:
        out.append(
            {
                "target": name,
                "figure": None if figure is None else round(figure, 3),
                "limit": limit,
                "unit": unit,
                "holds": figure is not None and figure <= limit,
            }
        )

    def get(scenario: str, subject: str, *keys: str) -> Any:
        value: Any = results.get(scenario, {}).get(subject)
        for key in keys:
            value = None if not isinstance(value, dict) else value.get(key)
        return value

    def against_bare(name: str, scenario: str, keys: tuple[str, ...], limit: float) -> None:
        check(
            f"{name}, ours/bare",
            ratio(get(scenario, "ours", *keys), get(scenario, "bare", *keys)),
            limit,
        )
        aa = ratio(get(scenario, "bare2", *keys), get(scenario, "bare", *keys))
        if aa is not None:
            check(f"{name}, A/A: |bare2/bare - 1|", abs(aa - 1), AA_LIMIT, "off 1")

    work = "instructions" if meter == "instructions" else "CPU"
    if "echo" in results:
        against_bare(f"echo: {work} per round trip", "echo", ("cpu_us_per_round_trip",), 1.05)
    if "fanout" in results:
        for size in next(iter(results["fanout"].values()), {}):
            against_bare(
                f"fanout {size}: {work} per broadcast",
                "fanout",
                (size, "cpu_ms_per_broadcast"),
                1.05,
            )
            if meter != "instructions":  # under callgrind, times are the slowed server's
                against_bare(
                    f"fanout {size}: time to last delivery",
                    "fanout",
                    (size, "last_delivery_ms"),
                    1.05,
                )
    if "churn" in results:
        against_bare(f"churn: {work} per connect + close", "churn", ("cpu_us_per_cycle",), 1.2)
        check(
            "churn: registry entries left, ours",
            get("churn", "ours", "registered_after"),
            0,
            "entries",
        )
        check("churn: tasks left, ours", get("churn", "ours", "tasks_left"), 0, "tasks")
        growth = get("churn", "ours", "memory_growth_bytes")
        if meter != "instructions":
            check(
                "churn: memory growth, ours",
                None if growth is None else growth / 2**20,
                5.0,
                "MiB",
            )
    if "slow" in results:
        check(
            "slow: others' p95 delivery with a stalled client / without, ours",
            ratio(
                get("slow", "ours", "with_stall", "p95_delivery_ms"),
                get("slow", "ours", "without_stall", "p95_delivery_ms"),
            ),
            1.2,
        )
    if "idle" in results:
        ours = get("idle", "ours", "memory_bytes_per_connection")
        bare = get("idle", "bare", "memory_bytes_per_connection")
        check(
            "idle: memory per connection over bare",
            None if ours is None or bare is None else ours - bare,
            2048,
            "bytes",
        )
        n = get("idle", "ours", "sockets")
        check(
            f"idle: CPU for {n} idle sockets, ours",
            get("idle", "ours", "cpu_percent_of_core"),
            2.0,
            "% of a core",
        )
    if "cluster" in results:
        check(
            "cluster: worker CPU per delivered message, Redis / memory",
            ratio(
                get("cluster", "cluster", "cpu_us_per_delivered"),
                get("cluster", "memory", "cpu_us_per_delivered"),
            ),
            1.3,
        )
        check(
            "cluster: p99 publish-to-delivery across processes",
            get("cluster", "cluster", "latency", "p99_ms"),
            5.0,
            "ms",
        )
        for mode in ("memory", "cluster"):
            check(
                f"cluster: messages missing at {get('cluster', mode, 'latency', 'rate_per_s')}/s,"
                f" {mode}",
                get("cluster", mode, "latency", "missing"),
                0,
                "messages",
            )
    if "resume" in results:
        check(
            "resume: clients whose resume on another worker failed a check",
            get("resume", "opted_in", "replay", "failures"),
            0,
            "clients",
        )
    if "dead" in results:
        # The vanished peer is a plain client: at the default heartbeat_clients="opted_in" it
        # gets no text heartbeat, and is found by the server's own keepalive, as the bare app's
        # is (uvicorn: ping interval + ping timeout, 40 s at its defaults). Ours must not be
        # later than bare; without a bare figure, than the keepalive the run set.
        interval, timeout = (1.0, 1.0) if fast_heartbeat else UVICORN_KEEPALIVE
        bare = get("dead", "bare", "detected_s")
        check(
            "dead: detection of a plain client, ours (the limit: bare's + 0.5 s)",
            get("dead", "ours", "detected_s"),
            (bare if isinstance(bare, float | int) else interval + timeout) + 0.5,
            "s",
        )
    return out
