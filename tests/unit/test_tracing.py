"""OpenTelemetry: one span tree per run carrying run_id and tenant, no duplicates on replay;
exporters chosen by OTEL_* variables; the run and policy metrics.

The span tests run real workflows on the dev server into an in-memory exporter; replay
is exercised by a new worker taking over a paused run, and by the Replayer.
"""

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from clients.runs import start_run
from observability.metrics import phase_durations
from observability.setup import ObservabilityConfigError, build, exporter_names
from runtime.temporal_client import with_interceptors
from runtime.worker_factory import workflow_runner
from tests.helpers import RunHandle, echo_steps, new_tenant, running_worker
from tests.telemetry_support import process_telemetry
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)


# ----- exporters from the environment (pure) -------------------------------------------


def test_no_exporter_unless_configured():
    assert exporter_names({}, "traces") == [] and exporter_names({}, "metrics") == []
    telemetry = build({})
    assert telemetry.tracer_provider is None and telemetry.interceptors() == []


def test_otlp_when_an_endpoint_is_set_and_console_on_request():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert exporter_names(env, "traces") == ["otlp"] == exporter_names(env, "metrics")
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console,none"}, "traces") == ["console"]
    assert exporter_names({**env, "OTEL_SDK_DISABLED": "true"}, "traces") == []
    telemetry = build({**env, "OTEL_METRICS_EXPORTER": "none"})
    try:
        assert telemetry.tracer_provider is not None and telemetry.meter_provider is None
        assert len(telemetry.interceptors()) == 1
    finally:
        telemetry.shutdown()


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
    """Run 1 goes straight through. Run 2 pauses, its worker stops, and a new worker
    (empty cache) replays its history before resuming it: no workflow span twice."""
    exporter = InMemorySpanExporter()
    telemetry = build({}, span_processors=[SimpleSpanProcessor(exporter)])
    client = with_interceptors(dev_env.client, telemetry.interceptors())
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

    by_run = defaultdict(list)
    for span in exporter.get_finished_spans():
        by_run[span.attributes.get("run_id")].append(span)
    run_ids = [h.id.removeprefix("run-") for h in (straight, paused)]
    assert set(by_run) == set(run_ids), "every span carries the run id of its run"
    for tree in by_run.values():
        assert {s.attributes.get("tenant_id") for s in tree} == {tenant}
        assert len({s.context.trace_id for s in tree}) == 1
        [root] = [s for s in tree if s.parent is None]
        assert root.name in ("StartWorkflow:RunWorkflow", "SignalWithStartWorkflow:RunWorkflow")
        ids = {s.context.span_id for s in tree}
        assert all(s.parent.span_id in ids for s in tree if s.parent is not None)
        names = Counter(s.name for s in tree)
        assert names["RunWorkflow:RunWorkflow"] == 1 and names["CompleteWorkflow:RunWorkflow"] == 1
        assert names["StartActivity:steps.execute"] == 2 == names["RunActivity:steps.execute"]
        assert names["StartActivity:runs.open"] == 1 == names["RunActivity:runs.open"]
        for name, n in names.items():
            if name.startswith("StartActivity:"):
                assert n == names["RunActivity:" + name.split(":", 1)[1]], name
    assert len({tree[0].context.trace_id for tree in by_run.values()}) == 2
    paused_names = Counter(s.name for s in by_run[run_ids[1]])
    assert paused_names["HandleSignal:pause"] == 1 == paused_names["HandleSignal:resume"]
    assert paused_names["StartActivity:control.record_pause"] == 1

    before = len(exporter.get_finished_spans())
    replayer = Replayer(
        workflows=[RunWorkflow],
        interceptors=telemetry.interceptors(),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    for handle in (straight, paused):
        await replayer.replay_workflow(await handle.fetch_history())
    assert len(exporter.get_finished_spans()) == before, "replay created spans"
    telemetry.shutdown()


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
