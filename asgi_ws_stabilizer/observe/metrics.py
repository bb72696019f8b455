"""Turning metrics on: the Prometheus sink when ``enable_metrics`` is set, and ``metrics_route``.

Neither imports prometheus-client unless it is used (observe/prometheus.py does), so an app
without ``enable_metrics`` never loads it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..config.env import env_var
from ..errors import SettingsError
from .sink import Sink

EXTRA = "pip install 'asgi_ws_stabilizer[prometheus]'"


def metrics_sinks(enabled: bool) -> list[Sink]:
    """The sinks that ``enable_metrics`` adds: the Prometheus sink, or none.

    Raises:
        SettingsError: ``enable_metrics`` is on and prometheus-client is not installed.
    """
    if not enabled:
        return []
    try:
        module = _prometheus()
    except ImportError as exc:
        raise SettingsError(
            [
                (
                    "enable_metrics",
                    env_var("enable_metrics"),
                    f"Prometheus metrics need prometheus-client: {EXTRA} ({exc})",
                )
            ]
        ) from None
    sink: Sink = module.PrometheusSink()
    return [sink]


def metrics_route(path: str = "/metrics") -> Route:
    """A Starlette ``Route`` that serves the default registry in Prometheus's text format.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, each scrape sums the files of every worker
    (``MultiProcessCollector``) after forgetting the live gauges of workers that died, so a scrape
    of any worker answers for all of them. The endpoint is synchronous: Starlette runs it in its
    thread pool, off the event loop. Add it to the app's routes (not as a mount: a mount answers
    ``/metrics`` with a redirect that scrapers do not follow).

    Raises:
        ImportError: prometheus-client is not installed (the message says how to install it).
    """
    try:
        module = _prometheus()
    except ImportError as exc:
        raise ImportError(f"metrics_route() needs prometheus-client: {EXTRA} ({exc})") from exc

    def metrics(request: Request) -> Response:
        body, content_type = module.exposition()
        return Response(body, media_type=content_type)

    return Route(path, metrics, methods=["GET"], include_in_schema=False)


def _prometheus() -> ModuleType:
    return importlib.import_module(".prometheus", __package__)
