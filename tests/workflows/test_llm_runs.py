"""Runs with llm steps on the real dev server against the local chat server: the model's
tool calls recorded in the trace (the chain verified), and the GenAI telemetry of each
attempt — a ``chat {model}`` span inside the run's span tree, once per attempt, none on
replay."""

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from db.models import TraceStep
from db.queries.evidence import run_proof
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from runtime.temporal_client import with_plugins
from runtime.worker_factory import workflow_runner
from tests.helpers import new_tenant, rows, running_worker, start_run
from tests.telemetry_support import process_spans, process_telemetry
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)

LOOKUP = {"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"customer": {"type": "string"}}}}}  # fmt: skip


async def test_the_models_tool_calls_are_the_steps_output_in_the_chain(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    with chat_server(usage=(100, 20)) as server:
        server.script("agent", [Turn.calls(ToolCall("lookup", {"customer": "acme"}))])
        llm_settings = settings.model_copy(update={"llm_base_url": server.base_url})
        step = {"prompt": "find the invoice", "model": "agent", "tools": [LOOKUP]}
        async with running_worker(dev_env.client, llm_settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": [{"skill": "llm",
                                                                      "input": step}]})  # fmt: skip
            result = await handle.result()
        [sent] = server.bodies()
    assert result.status == "succeeded"
    assert sent["tools"] == [LOOKUP] and sent["messages"][-1]["content"] == "find the invoice"
    [trace] = rows(sessions, TraceStep, run_id=run_id)
    [call] = trace.output["tool_calls"]
    assert call["function"] == {"name": "lookup", "arguments": '{"customer": "acme"}'}
    assert trace.output["usage"] == {"prompt_tokens": 100, "completion_tokens": 20}
    assert trace.input["tools"] == [LOOKUP]
    with sessions() as session:
        assert run_proof(session, run_id).status == "VERIFIED"


async def test_each_attempt_is_one_chat_span_in_the_runs_tree_and_none_on_replay(
    dev_env, settings, sessions, task_queue, run_id
):
    spans, reader = process_spans(), process_telemetry().reader
    client = with_plugins(dev_env.client, spans.telemetry.plugins())
    model = f"traced-{run_id}"
    tenant = new_tenant(sessions)
    with chat_server(usage=(40, 9)) as server:
        server.fail_next(Turn.failure(503))  # the first attempt fails, Temporal retries it
        llm_settings = settings.model_copy(update={"llm_base_url": server.base_url})
        steps = [{"skill": "llm", "input": {"prompt": "hello", "model": model}}]
        async with running_worker(client, llm_settings, sessions, task_queue):
            handle = await start_run(client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            assert (await handle.result()).status == "succeeded"
        assert len(server.bodies()) == 2
    mine = [s for s in spans.exporter.get_finished_spans() if s.attributes.get("run_id") == run_id]
    chats = sorted((s for s in mine if s.name == f"chat {model}"), key=lambda s: s.start_time)
    assert [c.attributes.get("error.type") for c in chats] == ["503", None]
    assert chats[1].attributes["gen_ai.usage.input_tokens"] == 40
    assert {c.attributes["tenant_id"] for c in chats} == {tenant}
    by_id = {s.context.span_id: s for s in mine}
    parents = [by_id[c.parent.span_id] for c in chats]
    assert [p.name for p in parents] == ["RunActivity:steps.execute"] * 2
    assert parents[0].context.span_id != parents[1].context.span_id  # one per attempt
    assert len({s.context.trace_id for s in mine}) == 1  # one tree for the run

    data = reader.get_metrics_data()
    durations = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gen_ai.client.operation.duration"
        for p in m.data.data_points
        if p.attributes.get("gen_ai.request.model") == model
    ]
    assert sorted((p.attributes.get("error.type") or "", p.count) for p in durations) == [
        ("", 1),
        ("503", 1),
    ]

    before = len(spans.exporter.get_finished_spans())
    replayer = Replayer(workflows=[RunWorkflow], plugins=spans.telemetry.plugins(),
                        data_converter=pydantic_data_converter,
                        workflow_runner=workflow_runner())  # fmt: skip
    await replayer.replay_workflow(await handle.fetch_history())
    replayed = spans.exporter.get_finished_spans()[before:]
    assert not [s for s in replayed if s.name.startswith("chat ")]
    assert len(replayed) == 0, [s.name for s in replayed]


async def test_an_agents_tool_calls_are_execute_tool_spans_in_the_runs_tree(
    dev_env, settings, sessions, task_queue, run_id
):
    """GenAI conventions: each tool call the model asked for is an ``execute_tool {name}``
    span with the call's id, in the run's trace beside the ``chat`` spans."""
    spans = process_spans()
    client = with_plugins(dev_env.client, spans.telemetry.plugins())
    model = f"m-{run_id}"
    tenant = new_tenant(sessions)
    echo = ToolCall("echo", {"text": "ticket 42"})
    broken = ToolCall("template", {"template": "$missing"})  # the tool fails: error.type
    with chat_server() as server:
        server.script(model, [Turn.calls(echo, broken), Turn.reply("done")])
        llm_settings = settings.model_copy(update={"llm_base_url": server.base_url})
        steps = [{"skill": "agent", "input": {"model": model, "prompt": "triage",
                                              "tools": ["echo", "template"]}}]  # fmt: skip
        async with running_worker(client, llm_settings, sessions, task_queue):
            handle = await start_run(client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            assert (await handle.result()).status == "succeeded"
        sent = server.bodies()
    mine = [s for s in spans.exporter.get_finished_spans() if s.attributes.get("run_id") == run_id]
    tools = sorted((s for s in mine if s.name.startswith("execute_tool ")),
                   key=lambda s: s.start_time)  # fmt: skip
    assert [s.name for s in tools] == ["execute_tool echo", "execute_tool template"]
    calls = next(m for m in sent[1]["messages"] if m["role"] == "assistant")["tool_calls"]
    assert [s.attributes["gen_ai.tool.call.id"] for s in tools] == [c["id"] for c in calls]
    assert {s.attributes["gen_ai.operation.name"] for s in tools} == {"execute_tool"}
    assert [s.attributes.get("error.type") for s in tools] == [None, "tool_error"]
    chats = [s for s in mine if s.name == f"chat {model}"]
    assert len(chats) == 2
    assert len({s.context.trace_id for s in [*tools, *chats]}) == 1  # one tree
