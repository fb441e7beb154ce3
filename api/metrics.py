"""Prometheus metrics: requests by route and status, latency per route and per search stage,
and the index size of each tenant.

Each app has its own registry, so several apps in one process (tests, benches) do not collide.
Every label value comes from a closed set, so no client can grow the number of series (each one
costs memory for good, and every scrape carries it): routes are labelled by their template
(`/v1/documents/{doc_id:path}`, or "unmatched"), never the raw path; methods and status codes by
their standard names, anything else as "other"; search stages and evaluation metrics by the
names the code gives them, tenants by the tenants that hold keys or reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# A server answers any token as a method (uvicorn passes it on, and a route answers 405): only
# the standard ones (RFC 9110 and PATCH) are labelled by name. Methods are case-sensitive.
_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
_STATUSES = frozenset(status.value for status in HTTPStatus)
_OTHER = "other"


def _method_label(method: str) -> str:
    return method if method in _METHODS else _OTHER


def _status_label(status: int) -> str:
    return str(status) if status in _STATUSES else _OTHER


class _IndexSizeCollector(Collector):
    def __init__(self, sizes: Callable[[], Mapping[str, int]]) -> None:
        self._sizes = sizes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "rag_index_chunks", "Chunks in the index per tenant", labels=["tenant"]
        )
        for tenant, count in sorted(self._sizes().items()):
            gauge.add_metric([tenant], count)
        yield gauge


class _EvalCollector(Collector):
    def __init__(self, latest: Callable[[], Iterable[tuple[str, str, float, bool]]]) -> None:
        self._latest = latest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        value = GaugeMetricFamily(
            "rag_eval_metric",
            "Latest evaluation run's mean per tenant and metric",
            labels=["tenant", "metric"],
        )
        regressed = GaugeMetricFamily(
            "rag_eval_regression",
            "1 when the tenant's latest run regressed on the metric against its baseline",
            labels=["tenant", "metric"],
        )
        for tenant, metric, mean, flagged in self._latest():
            value.add_metric([tenant, metric], mean)
            regressed.add_metric([tenant, metric], 1.0 if flagged else 0.0)
        yield value
        yield regressed


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "rag_search_stage_duration_seconds",
            "Search latency by stage (embed, engine, fuse, rerank, llm, total, ...)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def track_index_sizes(self, sizes: Callable[[], Mapping[str, int]]) -> None:
        """Register the per-tenant index size gauge, computed at scrape time."""
        self.registry.register(_IndexSizeCollector(sizes))

    def track_evaluations(
        self, latest: Callable[[], Iterable[tuple[str, str, float, bool]]]
    ) -> None:
        """Register the evaluation gauges, read from the latest reports at scrape time."""
        self.registry.register(_EvalCollector(latest))

    def observe_stages(self, timings_ms: Mapping[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stages.labels(stage).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by the route that served it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method, code = _method_label(scope["method"]), _status_label(status)
            self.metrics.requests.labels(route, method, code).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
