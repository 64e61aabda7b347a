"""The test process's one meter provider and one tracer provider (OpenTelemetry allows one
of each per process).

Built once by ``observability.setup.build`` as the worker builds it (``prometheus=True``:
the Prometheus reader whose registry a metrics server serves), plus an in-memory reader
for the tests that read the SDK's points directly. Every test that looks at metrics takes
it from here, whichever of them runs first. Spans recorded through the global tracer
provider are read from ``process_spans()``: the Temporal spans of the OpenTelemetry plugin
(``Telemetry.plugins()``, which refuses any other provider) and the GenAI spans of the llm
skill (observability.genai).
"""

from dataclasses import dataclass

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.setup import Telemetry, build
from observability.tracing import quiet_abandoned_detaches


@dataclass(frozen=True)
class ProcessTelemetry:
    telemetry: Telemetry
    reader: InMemoryMetricReader


_BUILT: list[ProcessTelemetry] = []


def process_telemetry() -> ProcessTelemetry:
    """The process-wide providers, installed on first use (skips if someone else's are)."""
    if not _BUILT:
        reader = InMemoryMetricReader()
        telemetry = build({}, metric_readers=[reader], prometheus=True)
        metrics.set_meter_provider(telemetry.meter_provider)
        if metrics.get_meter_provider() is not telemetry.meter_provider:
            pytest.skip("another meter provider was installed first in this process")
        _BUILT.append(ProcessTelemetry(telemetry, reader))
    return _BUILT[0]


@dataclass(frozen=True)
class ProcessSpans:
    telemetry: Telemetry  # its plugins() trace Temporal calls into the same provider
    exporter: InMemorySpanExporter


_SPANS: list[ProcessSpans] = []


def process_spans() -> ProcessSpans:
    """The process-wide tracer provider (as the worker builds it: replay-safe, run
    attributes on every span) with an in-memory exporter, installed on first use (skips if
    someone else's is)."""
    if not _SPANS:
        exporter = InMemorySpanExporter()
        telemetry = build({}, span_processors=[SimpleSpanProcessor(exporter)])
        trace.set_tracer_provider(telemetry.tracer_provider)
        if trace.get_tracer_provider() is not telemetry.tracer_provider:
            pytest.skip("another tracer provider was installed first in this process")
        quiet_abandoned_detaches()  # as observability.setup.install does
        _SPANS.append(ProcessSpans(telemetry, exporter))
    return _SPANS[0]
