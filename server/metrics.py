"""HTTP metrics and the /metrics exposition.

With several worker processes, prometheus-client keeps every value in memory-mapped files
under PROMETHEUS_MULTIPROC_DIR; that variable must be set before prometheus_client is first
imported, which the runner arranges (see server/runner.py). The exposition then adds up every
process's files, so any worker answers for all of them.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# The runner prepares this folder (server/runner.py); here it is only read.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
# Requests to paths that match no route share one label, so a scanner cannot blow up the
# number of series.
UNMATCHED: Final = "unmatched"

HTTP_REQUESTS = Counter(
    "slotrush_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "slotrush_http_request_seconds",
    "Time from routing a request to having its response, by route template.",
    ["route"],
    buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5),
)
LOAD_SHED = Counter(
    "slotrush_load_shed_total",
    "Requests answered 503 busy to protect the server: booking_queue_full (the waiting room "
    "in front of the strategy was full) or deadline (no answer within the request deadline).",
    ["reason"],
)
CONNECTIONS_CLOSED = Counter(
    "slotrush_connections_closed_total",
    "Connections the server closed on a slow client: header_timeout (a request head took too "
    "long) or body_timeout (a request body did not arrive before the request deadline).",
    ["reason"],
)
SOLD_OUT_FAST_PATH = Counter(
    "slotrush_sold_out_fast_path_total",
    "Booking requests answered sold out from memory, without touching Redis or PostgreSQL.",
)


class HttpMetrics:
    """Label children bound once per (route, method, status): no label lookup per request."""

    def __init__(self) -> None:
        self._requests: dict[tuple[str, str, int], Counter] = {}
        self._seconds: dict[str, Histogram] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = HTTP_REQUESTS.labels(route, method, str(status))
        requests.inc()
        latency = self._seconds.get(route)
        if latency is None:
            latency = self._seconds[route] = HTTP_SECONDS.labels(route)
        latency.observe(seconds)


def exposition_registry() -> CollectorRegistry:
    """The registry /metrics renders: every worker's values, or this process's."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
