"""The Prometheus ``/metrics`` endpoint: the SDK meter provider's metrics, for scraping.

``opentelemetry-exporter-prometheus``'s ``PrometheusMetricReader`` is one more reader of the
meter provider (beside the OTLP one, if any): each scrape collects the instruments of
``observability.metrics`` and translates them (``governed_runs.policy.decisions`` →
``governed_runs_policy_decisions_total``; a histogram in ``s`` → ``…_seconds``). It lives in
a registry of its own, with the process, platform and GC collectors of prometheus_client,
served by prometheus_client's HTTP server in a daemon thread.

The worker binds the port before anything else starts (worker.py), so a busy port is a
one-line ``MetricsServerError`` naming the setting.
"""

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)


class MetricsServerError(RuntimeError):
    """The metrics port cannot be bound; the message names the setting."""


def prometheus_reader() -> tuple[PrometheusMetricReader, CollectorRegistry]:
    """A reader for the meter provider and the registry a metrics server serves it from."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    # one meter (governed_runs): the otel_scope_* labels on every sample would say nothing
    return PrometheusMetricReader(registry=registry, scope_info_enabled=False), registry


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint (``close`` stops it)."""

    host: str
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` on host:port (METRICS_HOST, METRICS_PORT; 0: a free port, whose
    number is ``port`` of the result: the worker logs its URL once it is up)."""
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise MetricsServerError(
            f"METRICS_PORT {port} cannot be bound on {host}: {reason} "
            "(set another METRICS_PORT, or METRICS_ENABLED=false)"
        ) from None
    return MetricsServer(host, httpd.server_port, httpd, thread)
