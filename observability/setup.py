"""Tracer and meter providers from the standard OTEL_* environment variables.

Exporters: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (comma lists of ``otlp``,
``console``, ``none``). Unset, they are ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
the signal's own endpoint variable) is set, and nothing otherwise: the console exporter
is off by default. ``OTEL_SDK_DISABLED=true`` turns everything off. The OTLP exporter
speaks http/protobuf and reads its endpoint, headers and timeout from the usual
variables; the resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``
(service name ``governed-runs`` when none is given). ``prometheus=True`` (the worker's
METRICS_ENABLED) adds the Prometheus reader (``observability.prometheus``) beside them:
the meter provider is then built whatever the OTEL_* variables say, so ``/metrics`` has
the figures even when nothing is exported over OTLP.

The tracer provider is the SDK's replay-safe one (``temporalio.contrib.opentelemetry.
create_tracer_provider``: span ids from the workflow's deterministic random inside a
workflow, spans ended only outside replay) with the resource, the run attributes and the
exporters above. The Temporal plugin (``Telemetry.plugins()``) records into the *global*
tracer provider, so it must be installed (``install``) before a client or worker takes
the plugin.

Called at the edge (worker.py, ``python -m api``), never at import time.
"""

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanProcessor,
)
from prometheus_client import CollectorRegistry
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider

from observability.prometheus import prometheus_reader
from observability.tracing import (
    ExportedSpans,
    RunAttributesSpanProcessor,
    RunTracingPlugin,
    quiet_abandoned_detaches,
)

log = logging.getLogger(__name__)
DEFAULT_SERVICE_NAME = "governed-runs"
KNOWN_EXPORTERS = ("otlp", "console", "none")


class ObservabilityConfigError(ValueError):
    """An OTEL_* variable names something this build cannot do."""


def exporter_names(env: Mapping[str, str], signal: str) -> list[str]:
    """The exporters for ``signal`` (``traces`` or ``metrics``) the environment asks for."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = env.get(variable, "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN_EXPORTERS]
    if unknown:
        raise ObservabilityConfigError(
            f"{variable}: unsupported exporter {', '.join(unknown)} "
            f"(supported: {', '.join(KNOWN_EXPORTERS)})"
        )
    return [n for n in names if n != "none"]


def _check_protocol(env: Mapping[str, str], signal: str) -> None:
    protocol = env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip().lower() != "http/protobuf":
        raise ObservabilityConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (use http/protobuf)"
        )


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    _check_protocol(env, "traces")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_reader(name: str, env: Mapping[str, str]) -> MetricReader:
    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    _check_protocol(env, "metrics")
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def resource() -> Resource:
    found = Resource.create()
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return found


@dataclass
class Telemetry:
    """The providers this process built (None: that signal stays a no-op)."""

    tracer_provider: ReplaySafeTracerProvider | None = None
    meter_provider: MeterProvider | None = None
    exporters: dict[str, list[str]] = field(default_factory=dict)
    # what a metrics server serves (observability.prometheus); None: no Prometheus reader
    prometheus_registry: CollectorRegistry | None = None

    def plugins(self) -> list[RunTracingPlugin]:
        """Temporal client plugins (empty when tracing is off): the OpenTelemetry plugin
        with the run's context (observability.tracing), for the client and every worker
        and Replayer built on it. Its spans go to the global tracer provider, so this
        telemetry must be the installed one."""
        if self.tracer_provider is None:
            return []
        if trace.get_tracer_provider() is not self.tracer_provider:
            raise ObservabilityConfigError(
                "OpenTelemetry: Temporal tracing needs this telemetry's tracer provider to be "
                "the global one (observability.setup.install; none other installed before it)"
            )
        return [RunTracingPlugin()]

    def shutdown(self) -> None:
        """Flush and stop the exporters (end of process)."""
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                provider.shutdown()


def build(
    env: Mapping[str, str] | None = None,
    *,
    span_processors: Iterable[SpanProcessor] = (),
    metric_readers: Iterable[MetricReader] = (),
    prometheus: bool = False,
) -> Telemetry:
    """Providers for the exporters the environment names, plus any given ones (tests), plus
    the Prometheus reader when ``prometheus``."""
    env = os.environ if env is None else env
    span_processors, metric_readers = list(span_processors), list(metric_readers)
    names = {"traces": exporter_names(env, "traces"), "metrics": exporter_names(env, "metrics")}
    telemetry = Telemetry(exporters=names)
    if names["traces"] or span_processors:
        provider = create_tracer_provider(resource=resource())
        provider.add_span_processor(RunAttributesSpanProcessor())
        for name in names["traces"]:
            provider.add_span_processor(
                ExportedSpans(BatchSpanProcessor(_span_exporter(name, env)))
            )
        for processor in span_processors:
            provider.add_span_processor(ExportedSpans(processor))
        telemetry.tracer_provider = provider
    readers = [_metric_reader(name, env) for name in names["metrics"]] + metric_readers
    if prometheus:
        reader, telemetry.prometheus_registry = prometheus_reader()
        readers.append(reader)
        names["metrics"] = [*names["metrics"], "prometheus"]
    if readers:
        telemetry.meter_provider = MeterProvider(resource=resource(), metric_readers=readers)
    return telemetry


def install(telemetry: Telemetry) -> None:
    """Make the providers global (once per process), so ``observability.metrics`` records."""
    if telemetry.tracer_provider is not None:
        trace.set_tracer_provider(telemetry.tracer_provider)
        quiet_abandoned_detaches()
    if telemetry.meter_provider is not None:
        metrics.set_meter_provider(telemetry.meter_provider)
    exported = [n for names in telemetry.exporters.values() for n in names if n != "prometheus"]
    if exported:  # the /metrics endpoint is the worker's to log, once it is up
        log.info(
            "OpenTelemetry: traces → %s, metrics → %s",
            ", ".join(telemetry.exporters.get("traces", [])) or "off",
            ", ".join(telemetry.exporters.get("metrics", [])) or "off",
        )


def configure(env: Mapping[str, str] | None = None, *, prometheus: bool = False) -> Telemetry:
    """Build from the environment and install globally: what worker.py calls."""
    telemetry = build(env, prometheus=prometheus)
    install(telemetry)
    return telemetry
