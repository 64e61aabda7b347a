"""The test process's one meter provider (OpenTelemetry allows one per process).

Built once by ``observability.setup.build`` as the worker builds it (``prometheus=True``:
the Prometheus reader whose registry a metrics server serves), plus an in-memory reader
for the tests that read the SDK's points directly. Every test that looks at metrics takes
it from here, whichever of them runs first.
"""

from dataclasses import dataclass

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from observability.setup import Telemetry, build


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
