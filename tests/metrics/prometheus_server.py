"""A private Prometheus server on a free loopback port that scrapes one target every second.

Its data lives in a temporary directory; it is stopped by its PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any

import httpx

from benchmarks.server import end_process

from ..servers import free_port, require_program, written
from ..timing import t

SCRAPE_EVERY = "1s"


def require_prometheus() -> str:
    """The path of ``prometheus``; skips the test without one, fails instead when ``CI=true``."""
    return require_program("prometheus", "scrape test")


CONFIG = """\
global:
  scrape_interval: {every}
  scrape_timeout: {every}
scrape_configs:
  - job_name: app
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target}"]
"""


class PrometheusServer:
    """One ``prometheus`` process scraping ``127.0.0.1:target/metrics``."""

    def __init__(self, executable: str, target: int) -> None:
        self.executable = executable
        self.target = target
        self.port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="prometheus-test-")
        self._log: IO[str] | None = None
        self.process: subprocess.Popen[str] | None = None
        self.http = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=t(10)
        )

    def start(self) -> None:
        root = Path(self._dir.name)
        config = root / "prometheus.yml"
        config.write_text(CONFIG.format(every=SCRAPE_EVERY, target=self.target))
        self._log = (root / "log").open("w+")
        self.process = subprocess.Popen(
            [
                self.executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    async def ready(self) -> None:
        """Return once the server answers ``/-/ready``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t(30)
        while True:
            assert self.process is not None
            assert self.process.poll() is None, self.output()
            try:
                if (await self.http.get("/-/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise TimeoutError("prometheus is not ready:\n" + self.output())
            await asyncio.sleep(0.1)

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of ``promql`` (each ``{"metric": {...}, "value": [ts, "v"]}``)."""
        answer = await self.http.get("/api/v1/query", params={"query": promql})
        body = answer.json()
        assert body.get("status") == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def by(self, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
        """``promql``'s series that are not 0, keyed by the values of ``labels``."""
        return {
            tuple(row["metric"].get(label, "") for label in labels): float(row["value"][1])
            for row in await self.query(promql)
            if float(row["value"][1]) != 0
        }

    async def scalar(self, promql: str) -> float | None:
        rows = await self.query(promql)
        return float(rows[0]["value"][1]) if rows else None

    def output(self) -> str:
        return "" if self._log is None or self._log.closed else written(self._log)[-3000:]

    async def close(self) -> None:
        await self.http.aclose()
        if self.process is not None:
            end_process(self.process, wait=t(10), kill_wait=t(5))
        if self._log is not None:
            self._log.close()
        self._dir.cleanup()
