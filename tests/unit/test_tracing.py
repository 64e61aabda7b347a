"""OpenTelemetry: one span tree per run carrying run_id and tenant, no duplicates on replay;
exporters chosen by OTEL_* variables; the replay-safe provider and the plugin; the run and
policy metrics.

The span tests run real workflows on the dev server into the process's replay-safe tracer
provider (tests.telemetry_support, since the plugin records into the global one); replay
is exercised by a new worker taking over a paused run, and by the Replayer. Runs a plain
client or the Temporal CLI starts, worker restarts and a worker without a cache:
tests/workflows/test_run_span_tree.py.
"""

import asyncio
import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import (
    OpenTelemetryInterceptor,
    OpenTelemetryPlugin,
    ReplaySafeTracerProvider,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from clients.runs import start_run
from observability.metrics import phase_durations
from observability.setup import ObservabilityConfigError, build, exporter_names
from observability.tracing import (
    ABANDONED,
    ExportedSpans,
    RunAttributesSpanProcessor,
    RunContextInterceptor,
    RunTracingPlugin,
    WorkflowSpanInterceptor,
    quiet_abandoned_detaches,
    run_baggage,
)
from runtime.temporal_client import with_plugins
from runtime.worker_factory import workflow_runner
from tests.helpers import RunHandle, echo_steps, new_tenant, running_worker
from tests.telemetry_support import process_spans, process_telemetry
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)


# ----- exporters from the environment (pure) -------------------------------------------


def test_no_exporter_unless_configured():
    assert exporter_names({}, "traces") == [] and exporter_names({}, "metrics") == []
    telemetry = build({})
    assert telemetry.tracer_provider is None and telemetry.plugins() == []


def test_otlp_when_an_endpoint_is_set_and_console_on_request():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert exporter_names(env, "traces") == ["otlp"] == exporter_names(env, "metrics")
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console,none"}, "traces") == ["console"]
    assert exporter_names({**env, "OTEL_SDK_DISABLED": "true"}, "traces") == []
    telemetry = build({**env, "OTEL_METRICS_EXPORTER": "none"})
    try:
        assert isinstance(telemetry.tracer_provider, ReplaySafeTracerProvider)
        assert telemetry.meter_provider is None
    finally:
        telemetry.shutdown()


def test_the_plugin_needs_the_telemetrys_provider_to_be_the_global_one():
    """The plugin's spans go to the global tracer provider: a telemetry that is not the
    installed one is refused naming the cause, the installed one gives the plugin."""
    other = build({"OTEL_TRACES_EXPORTER": "console"})
    try:
        with pytest.raises(ObservabilityConfigError, match="global one"):
            other.plugins()
    finally:
        other.shutdown()
    [plugin] = process_spans().telemetry.plugins()
    assert isinstance(plugin, RunTracingPlugin) and isinstance(plugin, OpenTelemetryPlugin)
    kinds = [type(i) for i in plugin.interceptors]
    assert kinds == [RunContextInterceptor, OpenTelemetryInterceptor, WorkflowSpanInterceptor]


def test_run_attributes_and_abandoned_spans():
    """run_id/tenant_id from the baggage of a call to a run; a span marked abandoned never
    reaches an exporter, every other one does."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RunAttributesSpanProcessor())
    provider.add_span_processor(ExportedSpans(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("test")
    with run_baggage("run-r-1", "t-1"), tracer.start_as_current_span("call"):
        pass
    with run_baggage("reconcile-1", "t-1"), tracer.start_as_current_span("other workflow"):
        pass
    with tracer.start_as_current_span("dropped", attributes={ABANDONED: True}):
        pass
    kept = {s.name: dict(s.attributes) for s in exporter.get_finished_spans()}
    assert kept == {"call": {"run_id": "r-1", "tenant_id": "t-1"}, "other workflow": {}}
    provider.shutdown()


def failed_detach(during_close: bool) -> logging.LogRecord:
    try:
        try:
            raise GeneratorExit if during_close else KeyError("unrelated")
        except BaseException:
            raise ValueError("<Token ...> was created in a different Context") from None
    except ValueError as exc:
        exc.__suppress_context__ = False
        info = (type(exc), exc, exc.__traceback__)
    return logging.LogRecord("opentelemetry.context", logging.ERROR, __file__, 1,
                             "Failed to detach context", None, info)  # fmt: skip


def test_a_failed_detach_of_a_closed_coroutine_is_not_logged():
    """What a worker shutting down with cached runs logs once per run (the garbage
    collector closing them) is dropped; any other failed detach is kept."""
    quiet_abandoned_detaches()
    quiet_abandoned_detaches()  # once
    logger = logging.getLogger("opentelemetry.context")
    assert len(logger.filters) == 1
    assert not logger.filter(failed_detach(during_close=True))
    assert logger.filter(failed_detach(during_close=False))


def test_unknown_exporter_or_protocol_is_refused_naming_the_variable():
    with pytest.raises(ObservabilityConfigError, match="OTEL_TRACES_EXPORTER: .*zipkin"):
        exporter_names({"OTEL_TRACES_EXPORTER": "zipkin"}, "traces")
    with pytest.raises(ObservabilityConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        build({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_phase_durations():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    timeline = [("CREATED", t0), ("EXECUTING", t0 + timedelta(seconds=2))]
    assert phase_durations(timeline, t0 + timedelta(seconds=5)) == [
        ("CREATED", 2.0),
        ("EXECUTING", 3.0),
    ]


# ----- spans of real runs --------------------------------------------------------------

USER = {"id": "user-1", "authority": "TENANT_USER"}


async def wait_paused(handle) -> None:
    for _ in range(200):
        if (await handle.query(RunWorkflow.status_query)).pause is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("run never paused")


async def test_one_span_tree_per_run_with_run_id_and_no_duplicates_on_replay(
    dev_env, settings, sessions, task_queue
):
    """Started by the traced client: run 1 goes straight through; run 2 starts paused (its
    pause with the start), its worker stops, and a new worker (empty cache) replays its
    history before an untraced client resumes it: no workflow span twice."""
    spans = process_spans()
    client = with_plugins(dev_env.client, spans.telemetry.plugins())
    tenant = new_tenant(sessions)
    payload = {"tenant_id": tenant, "steps": echo_steps(2)}
    async with running_worker(client, settings, sessions, task_queue):
        straight = await start_run(client, task_queue, payload)
        assert (await straight.result()).status == "succeeded"
        paused = await start_run(
            client, task_queue, payload, start_signal=("pause", {"actor": USER})
        )
        untraced = RunHandle(dev_env.client.get_workflow_handle(paused.id))
        await wait_paused(untraced)
    async with running_worker(client, settings, sessions, task_queue):
        await untraced.signal("resume", {"actor": USER})
        assert (await paused.result()).status == "succeeded"

    run_ids = [h.id.removeprefix("run-") for h in (straight, paused)]
    by_run = defaultdict(list)
    for span in spans.exporter.get_finished_spans():
        if span.attributes.get("run_id") in run_ids:
            by_run[span.attributes["run_id"]].append(span)
    assert set(by_run) == set(run_ids), "every span carries the run id of its run"
    for tree in by_run.values():
        assert {s.attributes.get("tenant_id") for s in tree} == {tenant}
        assert len({s.context.trace_id for s in tree}) == 1
        [root] = [s for s in tree if s.parent is None]
        assert root.name in ("StartWorkflow:RunWorkflow", "SignalWithStartWorkflow:RunWorkflow")
        ids = {s.context.span_id for s in tree}
        assert all(s.parent.span_id in ids for s in tree if s.parent is not None)
        names = Counter(s.name for s in tree)
        assert names["RunWorkflow:RunWorkflow"] == 1
        [workflow] = [s for s in tree if s.name == "RunWorkflow:RunWorkflow"]
        assert workflow.parent.span_id == root.context.span_id
        assert workflow.end_time - workflow.start_time > 0
        assert names["StartActivity:steps.execute"] == 2 == names["RunActivity:steps.execute"]
        assert names["StartActivity:runs.open"] == 1 == names["RunActivity:runs.open"]
        for name, n in names.items():
            if name.startswith("StartActivity:"):
                assert n == names["RunActivity:" + name.split(":", 1)[1]], name
    assert len({tree[0].context.trace_id for tree in by_run.values()}) == 2
    paused_tree = by_run[run_ids[1]]
    paused_names = Counter(s.name for s in paused_tree)
    assert paused_names["HandleSignal:pause"] == 1 == paused_names["HandleSignal:resume"]
    assert paused_names["StartActivity:control.record_pause"] == 1
    parents = {s.name: s.parent.span_id for s in paused_tree if s.parent is not None}
    by_name = {s.name: s.context.span_id for s in paused_tree}
    # the pause came with the start: under the client's span; the untraced resume: under
    # the workflow span
    assert parents["HandleSignal:pause"] == by_name["SignalWithStartWorkflow:RunWorkflow"]
    assert parents["HandleSignal:resume"] == by_name["RunWorkflow:RunWorkflow"]

    before = len(spans.exporter.get_finished_spans())
    replayer = Replayer(
        workflows=[RunWorkflow],
        plugins=spans.telemetry.plugins(),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    for handle in (straight, paused):
        await replayer.replay_workflow(await handle.fetch_history())
    assert len(spans.exporter.get_finished_spans()) == before, "replay created spans"


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The process-wide meter provider's in-memory reader (the metrics module records there)."""
    return process_telemetry().reader


def points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_runs_record_outcome_phase_durations_and_policy_decisions(
    dev_env, settings, sessions, task_queue, metric_reader
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(
            dev_env.client, task_queue, {"tenant_id": tenant, "steps": echo_steps(2)}
        )
        assert (await handle.result()).status == "succeeded"
    mine = {"tenant_id": tenant}

    def of_tenant(name):
        return [p for p in points(metric_reader, name) if mine.items() <= p.attributes.items()]

    [finished] = of_tenant("governed_runs.runs.finished")
    assert finished.value == 1
    assert (finished.attributes["phase"], finished.attributes["status"]) == (
        "COMPLETED",
        "succeeded",
    )
    phases = {p.attributes["phase"]: p for p in of_tenant("governed_runs.run.phase.duration")}
    assert set(phases) == {"CREATED", "AUTHORIZED", "EXECUTING", "GOVERNANCE_CHECK", "FINALIZING"}
    assert all(p.count == 1 and p.sum >= 0 for p in phases.values())
    decisions = {
        p.attributes["decision"]: p.value for p in of_tenant("governed_runs.policy.decisions")
    }
    assert decisions == {"CONTINUE": 2}
