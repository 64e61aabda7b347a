"""One span tree per run however it was started (observability.tracing: the SDK's
OpenTelemetry plugin with the run's context), on the real dev server into the process's
replay-safe tracer provider (tests.telemetry_support): a run a plain client or the Temporal
CLI starts is one trace under its RunWorkflow span, with its activities and GenAI spans
below; a run started over HTTP is one tree under the client's StartWorkflow span; a worker
restart mid-run, or a worker with no workflow cache (every task a full replay), adds no
span twice; a Replayer adds none at all. Each test prints the run's span counts by name.
"""

import asyncio
import gc
import json
import logging
from collections import Counter

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.app import create_app
from clients.runs import start_run
from observability.tracing import ABANDONED
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from runtime.embedded_temporal import temporal_binary
from runtime.temporal_client import with_plugins
from runtime.worker_factory import workflow_runner
from services.api_keys import create_key
from tests.helpers import RunHandle, echo_steps, new_tenant, running_worker
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.telemetry_support import ProcessSpans, process_spans
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)

WORKFLOW_SPAN = "RunWorkflow:RunWorkflow"
USER = {"id": "user-1", "authority": "TENANT_USER"}


# Every span the provider ends, the ones ExportedSpans keeps from the exporters included.
UNFILTERED = InMemorySpanExporter()


@pytest.fixture
def spans() -> ProcessSpans:
    found = process_spans()
    if not getattr(UNFILTERED, "added", False):
        found.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(UNFILTERED))
        UNFILTERED.added = True
    return found


def traced(client: Client, spans: ProcessSpans) -> Client:
    """``client`` with the worker's telemetry plugins, as worker.py builds its client."""
    return with_plugins(client, spans.telemetry.plugins())


def of_run(spans: ProcessSpans, run_id: str) -> list[ReadableSpan]:
    return [s for s in spans.exporter.get_finished_spans() if s.attributes.get("run_id") == run_id]


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of the span's parent, its parent's, ... as far as ``by_id`` has them."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def one_tree(mine: list[ReadableSpan], tenant: str, root: str, label: str, *,
             request: bool = False) -> Counter:  # fmt: skip
    """The run's spans are one trace with one top span ``root`` (the trace's root; with
    ``request``, a child of the HTTP request's spans), every other parent in it, the run's
    tenant on every span, and one workflow span spanning its activities; prints the counts."""
    names = Counter(s.name for s in mine)
    traces = {s.context.trace_id for s in mine}
    print(f"\n{label}: {len(mine)} spans, {len(traces)} trace(s)")  # noqa: T201
    for name, n in sorted(names.items()):
        print(f"  {n} x {name}")  # noqa: T201
    assert len(traces) == 1, Counter((s.context.trace_id, s.name) for s in mine)
    by_id = {s.context.span_id: s for s in mine}
    tops = [s for s in mine if s.parent is None or s.parent.span_id not in by_id]
    assert [s.name for s in tops] == [root]
    assert (tops[0].parent is not None) is request
    assert {s.attributes.get("tenant_id") for s in mine} == {tenant}
    [workflow] = [s for s in mine if s.name == WORKFLOW_SPAN]
    assert workflow.end_time > workflow.start_time, "a real duration"
    for span in mine:
        if span is not workflow and span.name != root:
            assert WORKFLOW_SPAN in ancestors(span, by_id), span.name
        if span.name.startswith("RunActivity:"):
            assert workflow.start_time <= span.start_time <= span.end_time <= workflow.end_time
    return names


async def commanded(handle: WorkflowHandle) -> Counter:
    """Activities the history scheduled (regular) or recorded (local), by type."""
    found: Counter = Counter()
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            found[event.activity_task_scheduled_event_attributes.activity_type.name] += 1
        elif event.HasField("marker_recorded_event_attributes"):
            details = event.marker_recorded_event_attributes.details
            if "data" in details:  # a local activity's (a patch marker has none)
                found[json.loads(details["data"].payloads[0].data)["activity_type"]] += 1
    return found


async def once_per_activity(handle: WorkflowHandle, names: Counter) -> None:
    """One StartActivity and one RunActivity span for each activity the run commanded (no
    step is retried in these runs): none again on a replay."""
    activities = await commanded(handle)
    assert activities
    for kind in ("StartActivity", "RunActivity"):
        spans = {n.split(":", 1)[1]: c for n, c in names.items() if n.startswith(kind + ":")}
        assert spans == dict(activities), kind


async def nothing_on_replay(spans: ProcessSpans, *handles: WorkflowHandle) -> None:
    before = len(spans.exporter.get_finished_spans())
    replayer = Replayer(workflows=[RunWorkflow], plugins=spans.telemetry.plugins(),
                        data_converter=pydantic_data_converter,
                        workflow_runner=workflow_runner())  # fmt: skip
    for handle in handles:
        result = await replayer.replay_workflow(await handle.fetch_history())
        assert result.replay_failure is None
    replayed = spans.exporter.get_finished_spans()[before:]
    assert [s.name for s in replayed] == []


async def wait_paused(handle: WorkflowHandle) -> None:
    for _ in range(200):
        if (await handle.query(RunWorkflow.status_query)).pause is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("run never paused")


async def test_a_run_a_plain_client_starts_is_one_trace_under_its_workflow_span(
    dev_env, settings, sessions, task_queue, spans
):
    """The client has no interceptor or plugin (starter.py, any SDK client): the worker's
    RunWorkflow span is the root, with every activity and the agent's GenAI spans below."""
    tenant = new_tenant(sessions)
    model = f"m-{task_queue}"
    with chat_server() as server:
        server.script(model, [Turn.calls(ToolCall("echo", {"text": "ticket 42"})),
                              Turn.reply("done")])  # fmt: skip
        llm_settings = settings.model_copy(update={"llm_base_url": server.base_url})
        steps = [{"skill": "agent", "input": {"model": model, "prompt": "triage",
                                              "tools": ["echo"]}}, *echo_steps(1)]  # fmt: skip
        async with running_worker(traced(dev_env.client, spans), llm_settings, sessions,
                                  task_queue):  # fmt: skip
            handle = await start_run(dev_env.client, task_queue,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            assert (await RunHandle(handle).result()).status == "succeeded"
    mine = of_run(spans, handle.id.removeprefix("run-"))
    names = one_tree(mine, tenant, WORKFLOW_SPAN, "plain client, agent + echo step")
    assert names[WORKFLOW_SPAN] == 1 and names[f"chat {model}"] == 2
    assert names["execute_tool echo"] == 1
    by_id = {s.context.span_id: s for s in mine}
    for span in mine:
        if span.name.startswith(("chat ", "execute_tool ")):
            assert ancestors(span, by_id) == [
                "RunActivity:steps.execute",
                "StartActivity:steps.execute",
                WORKFLOW_SPAN,
            ]
    [workflow] = [s for s in mine if s.name == WORKFLOW_SPAN]
    assert workflow.attributes["temporalWorkflowID"] == handle.id
    await once_per_activity(handle, names)
    await nothing_on_replay(spans, handle)


async def test_a_run_the_temporal_cli_starts_is_one_trace(
    dev_env, settings, sessions, task_queue, run_id, spans, processes: ProcessOutput
):
    """``temporal workflow start``: no trace context, no baggage; the run id comes from the
    workflow id and the tenant from the run's input."""
    address = dev_env.client.service_client.config.target_host
    tenant = new_tenant(sessions)
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(1)}
    async with running_worker(traced(dev_env.client, spans), settings, sessions, task_queue):
        started = await asyncio.to_thread(
            processes.run, "temporal workflow start",
            [temporal_binary(), "workflow", "start", "--address", address,
             "--task-queue", task_queue, "--type", "RunWorkflow",
             "--workflow-id", f"run-{run_id}", "--input", json.dumps(payload)],
            timeout=30,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        handle = dev_env.client.get_workflow_handle(f"run-{run_id}")
        assert (await RunHandle(handle).result())["status"] == "succeeded"
    names = one_tree(of_run(spans, run_id), tenant, WORKFLOW_SPAN, "temporal CLI, 1 echo step")
    assert names[WORKFLOW_SPAN] == 1
    await once_per_activity(handle, names)


async def test_a_run_started_over_http_is_one_tree_under_the_client_span(
    dev_env, settings, sessions, task_queue, spans
):
    """The API's client carries the plugin: its StartWorkflow span is the root, the
    worker's RunWorkflow span its child."""
    app_settings = settings.model_copy(update={"task_queue": task_queue})
    client = traced(dev_env.client, spans)
    tenant = new_tenant(sessions)
    _, key = create_key(sessions, tenant, "TENANT_ADMIN")
    transport = httpx.ASGITransport(app=create_app(app_settings, sessions, client))
    async with (
        running_worker(client, app_settings, sessions, task_queue),
        httpx.AsyncClient(transport=transport, base_url="http://api") as api,
    ):
        started = await api.post("/runs", json={"steps": echo_steps(1)},
                                 headers={"X-API-Key": key})  # fmt: skip
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        handle = dev_env.client.get_workflow_handle(f"run-{run_id}")
        assert (await RunHandle(handle).result())["status"] == "succeeded"
    mine = of_run(spans, run_id)
    names = one_tree(mine, tenant, "StartWorkflow:RunWorkflow", "over HTTP, 1 echo step",
                     request=True)  # fmt: skip
    [client_span] = [s for s in mine if s.name == "StartWorkflow:RunWorkflow"]
    [workflow] = [s for s in mine if s.name == WORKFLOW_SPAN]
    assert workflow.parent.span_id == client_span.context.span_id
    assert names[WORKFLOW_SPAN] == 1 and names["StartWorkflow:RunWorkflow"] == 1
    # above the client span: FastAPI's own spans of the request (its native telemetry
    # traces into the global provider), in the same trace, rooted at the HTTP server span
    request = {
        s.context.span_id: s
        for s in spans.exporter.get_finished_spans()
        if s.context.trace_id == client_span.context.trace_id and s not in mine
    }
    chain = ancestors(client_span, {**request, **{s.context.span_id: s for s in mine}})
    print(f"  above the client span: {chain}")  # noqa: T201
    assert chain and request[client_span.parent.span_id].name == "fastapi.endpoint"
    [http_root] = [s for s in request.values() if s.parent is None]
    assert http_root.name == chain[-1] and http_root.kind.name == "SERVER"
    await once_per_activity(handle, names)


async def paused_then_resumed(dev_env, settings, sessions, task_queue, spans, *,
                              restart: bool) -> tuple[WorkflowHandle, str]:  # fmt: skip
    """A run a plain client starts paused (signal-with-start, as the CLI and the demo do),
    then resumes with a signal; with ``restart`` its worker stops while it is paused and a
    new one (empty cache) replays it before the resume."""
    tenant = new_tenant(sessions)
    client = traced(dev_env.client, spans)
    payload = {"tenant_id": tenant, "steps": echo_steps(3)}
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, payload,
                                 start_signal=("pause", {"actor": USER}))  # fmt: skip
        await wait_paused(handle)
        if not restart:
            await handle.signal("resume", {"actor": USER})
            assert (await RunHandle(handle).result()).status == "succeeded"
    gc.collect()  # what closes a run the stopped worker dropped from its cache
    if restart:
        async with running_worker(client, settings, sessions, task_queue):
            await handle.signal("resume", {"actor": USER})
            assert (await RunHandle(handle).result()).status == "succeeded"
    return handle, tenant


async def check_paused_run(spans: ProcessSpans, handle: WorkflowHandle, tenant: str,
                           label: str) -> None:  # fmt: skip
    gc.collect()
    mine = of_run(spans, handle.id.removeprefix("run-"))
    names = one_tree(mine, tenant, WORKFLOW_SPAN, label)
    assert names[WORKFLOW_SPAN] == 1
    # the resume, sent without a trace context, is traced under the workflow span; the
    # pause delivered with the start (before the workflow span exists) and the status
    # queries (no trace context) are not traced
    assert names["HandleSignal:resume"] == 1 and names["HandleSignal:pause"] == 0
    assert not [n for n in names if n.startswith("HandleQuery:")]
    assert names["StartActivity:control.record_pause"] == 1
    await once_per_activity(handle, names)
    await nothing_on_replay(spans, handle)


async def test_a_worker_restart_mid_run_adds_no_span_twice(
    dev_env, settings, sessions, task_queue, spans, caplog
):
    """The stopped worker drops the paused run from its cache unfinished; the garbage
    collector closes it, and the plugin ends its workflow span then: that copy (marked
    abandoned) is not exported, the real one is, when the run ends on the new worker; and
    OpenTelemetry's failed detach of the dead coroutine's context is not logged."""
    caplog.set_level(logging.DEBUG, logger="opentelemetry.context")
    handle, tenant = await paused_then_resumed(dev_env, settings, sessions, task_queue, spans,
                                               restart=True)  # fmt: skip
    await check_paused_run(spans, handle, tenant, "paused, worker restarted, resumed")
    run_id = handle.id.removeprefix("run-")
    ended = [s for s in UNFILTERED.get_finished_spans()
             if s.name == WORKFLOW_SPAN and s.attributes.get("run_id") == run_id]  # fmt: skip
    assert sorted(bool(s.attributes.get(ABANDONED)) for s in ended) == [False, True]
    assert len({s.context.span_id for s in ended}) == 1, "the same span, ended twice"
    assert not [r for r in caplog.records if "Failed to detach" in r.getMessage()]


async def test_with_no_workflow_cache_every_task_replays_and_no_span_is_twice(
    dev_env, settings, sessions, task_queue, spans
):
    uncached = settings.model_copy(update={"max_cached_workflows": 0})
    handle, tenant = await paused_then_resumed(dev_env, uncached, sessions, task_queue, spans,
                                               restart=False)  # fmt: skip
    tasks = [e async for e in handle.fetch_history_events()
             if e.HasField("workflow_task_completed_event_attributes")]  # fmt: skip
    assert len(tasks) > 3, "several workflow tasks, each a full replay"
    await check_paused_run(spans, handle, tenant, "max_cached_workflows=0, paused, resumed")
