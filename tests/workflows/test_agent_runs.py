"""Agent steps on the real dev server, both databases, against the local chat server with
scripted tool calls (workflows.agent_loop): each model call and each tool call is a governed
step — traced in the chain, judged before it runs, paused and approved between turns — and
a refused call is answered to the model as an error, recorded, never run."""

import asyncio
import json
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError

from clients.runs import RunRequestError
from clients.runs import start_run as start_validated
from db.models import (
    AuditExpectation,
    AuditLedgerEntry,
    PauseRecord,
    PreventionRecord,
    Run,
    TraceStep,
)
from db.queries.evidence import run_proof
from domain.agent import MAX_TURNS
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from tests.helpers import add_rule, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}
ECHO = ToolCall("echo", {"text": "ticket 42: printer on fire"})
TEMPLATE = ToolCall("template", {"template": "priority $p", "variables": {"p": "high"}})


def agent_step(model: str, tools=("echo", "template"), **extra) -> dict:
    return {"id": "triage", "skill": "agent", "input": {
        "model": model, "system": "You triage tickets.", "prompt": "Triage ticket 42.",
        "tools": list(tools), **extra}}  # fmt: skip


def trace(sessions, run_id) -> list[TraceStep]:
    return sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)


async def run_agent(dev_env, settings, sessions, task_queue, run_id, tenant, turns, steps,
                    **run) -> tuple:  # fmt: skip
    """The run's result, the chat requests the model got and the handle."""
    with chat_server() as server:
        server.script(f"m-{run_id}", turns)
        llm = settings.model_copy(update={"llm_base_url": server.base_url})
        async with running_worker(dev_env.client, llm, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps, **run})  # fmt: skip
            result = await handle.result()
        return result, server.bodies(), handle


async def test_an_agent_calls_two_tools_and_a_later_step_uses_its_answer(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    model = f"m-{run_id}"
    answer = {"text": {"$ref": "steps.triage.output.text"}}
    steps = [agent_step(model), {"skill": "echo", "input": answer}]
    turns = [Turn.calls(ECHO, TEMPLATE), Turn.reply("P1: printer on fire")]
    result, sent, handle = await run_agent(dev_env, settings, sessions, task_queue, run_id,
                                           tenant, turns, steps)  # fmt: skip
    assert (result.status, result.steps_done) == ("succeeded", 5)
    (row,) = rows(sessions, Run, id=run_id)  # the model and tool calls are counted as steps
    assert (row.steps_done, row.steps_total) == (5, 5)
    chain = trace(sessions, run_id)
    assert [(s.step_index, s.skill, s.status) for s in chain] == [
        (0, "llm", "OK"), (1, "echo", "OK"), (2, "template", "OK"), (3, "llm", "OK"),
        (4, "echo", "OK")]  # fmt: skip
    assert chain[1].output == {"text": "ticket 42: printer on fire"}
    assert chain[2].output == {"text": "priority high"}
    assert chain[4].input == {"text": "P1: printer on fire"}  # the agent's answer, referenced
    # What the model got: the tools as functions from their input schemas, then the
    # results of its two calls as tool messages answering their ids.
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["echo", "template"]
    assert sent[0]["tools"][0]["function"]["parameters"]["required"] == ["text"]
    assert [m["role"] for m in sent[1]["messages"]] == ["system", "user", "assistant", "tool",
                                                        "tool"]  # fmt: skip
    assistant, *answers = sent[1]["messages"][2:]
    assert [a["tool_call_id"] for a in answers] == [c["id"] for c in assistant["tool_calls"]]
    assert json.loads(answers[1]["content"]) == {"text": "priority high"}
    # The chain verifies and holds every model call and tool call, with what was sent.
    with sessions() as session:
        proof = run_proof(session, run_id)
    assert (proof.status, proof.step_count) == ("VERIFIED", 5)
    assert chain[3].input["messages"] == sent[1]["messages"]
    # Each index the trace records was expected by the run's audit contract, and acked.
    actions = {e.action for e in rows(sessions, AuditExpectation, run_id=run_id)}
    assert {f"record_step:{i}" for i in range(5)} <= actions
    assert not [e for e in rows(sessions, AuditExpectation, run_id=run_id)
                if e.action.startswith("record_step") and e.acked_at is None]  # fmt: skip
    cost = sum((s.cost for s in chain), Decimal(0))
    # The model calls cost too (the trace keeps 6 decimals of each step's cost).
    assert abs(result.cost - cost) < Decimal("0.000001") * 5 and cost > Decimal("0.0003")
    # History: a bound of events per step of the loop (domain.agent: the documented bound).
    events = [e async for e in handle.fetch_history_events()]
    steps_run = [i for i, e in enumerate(events)
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name
                 == "steps.execute"]  # fmt: skip
    assert len(steps_run) == 5  # one step activity per model call and per tool call
    # From the first step to the workflow task that took the last one's result: 6 events a
    # step (its activity and workflow task), the policy check before each and one
    # amendment a turn — 50 turns of 10 steps stay under 4,000 events.
    loop = events[steps_run[0] : steps_run[-1] + 6]
    assert len(loop) <= 7 * 5 + 1, [EventType.Name(e.event_type) for e in loop]


async def test_a_tool_call_a_blocked_rule_matches_never_runs_and_fails_the_run(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "no-templates", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    turns = [Turn.calls(ECHO), Turn.calls(TEMPLATE), Turn.reply("never")]
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      turns, [agent_step(f"m-{run_id}")])  # fmt: skip
    assert (result.status, result.steps_done) == ("failed_policy", 3)
    assert result.reason.startswith("prevented by rule 'no-templates' (BLOCKED): step 3 "
                                    "(template)")  # fmt: skip
    assert [s.skill for s in trace(sessions, run_id)] == ["llm", "echo", "llm"]  # it never ran
    assert len(sent) == 2  # and the model was not asked again
    [judged] = [r for r in rows(sessions, PreventionRecord, run_id=run_id) if r.step_index == 3]
    assert (judged.rule_name, judged.outcome) == ("no-templates", "BLOCKED")
    [entry] = rows(sessions, AuditLedgerEntry, event_type="STEP_PREVENTED", entity_id=run_id)
    assert entry.after_state["skill"] == "template"
    with sessions() as session:
        assert run_proof(session, run_id).status == "VERIFIED"


async def test_an_unknown_and_a_disallowed_tool_are_answered_as_errors_and_recorded(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    turns = [Turn.calls(ToolCall("delete_everything", {"really": True}), TEMPLATE, ECHO),
             Turn.reply("done without them")]  # fmt: skip
    steps = [agent_step(f"m-{run_id}", tools=["echo"])]
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      turns, steps)  # fmt: skip
    assert (result.status, result.steps_done) == ("succeeded", 5)
    chain = trace(sessions, run_id)
    assert [(s.skill, s.status) for s in chain] == [
        ("llm", "OK"), ("agent", "FAILED"), ("agent", "FAILED"), ("echo", "OK"),
        ("llm", "OK")]  # fmt: skip
    assert chain[1].error == ("refused: 'delete_everything' is not a tool of this agent "
                              "(its tools: echo)")  # fmt: skip
    assert chain[1].input["arguments"] == '{"really": true}'
    assert chain[2].error.startswith("refused: 'template' is not a tool of this agent")
    answers = [m for m in sent[1]["messages"] if m["role"] == "tool"]
    assert [json.loads(a["content"]).get("error", "")[:8] for a in answers] == [
        "refused:", "refused:", ""]  # fmt: skip
    # Refused calls are counted apart; the tenant's rules never saw them (they did not run).
    assert not [r for r in rows(sessions, PreventionRecord, run_id=run_id)]
    with sessions() as session:
        assert run_proof(session, run_id).status == "VERIFIED"


async def test_arguments_that_are_not_json_are_answered_and_bounded_by_max_turns(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    turns = [Turn.calls(ToolCall("echo", '{"text": "unterminated'))]  # every turn the same
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      turns, [agent_step(f"m-{run_id}", max_turns=3)])  # fmt: skip
    assert (result.phase, result.status) == ("FAILED", "failed")
    assert result.reason == ("step 0 (agent): max_turns (3) reached with the model still "
                             "calling tools (echo)")  # fmt: skip
    assert len(sent) == 3
    chain = trace(sessions, run_id)
    assert [s.skill for s in chain] == ["llm", "agent", "llm", "agent", "llm"]
    assert all("are not valid JSON" in s.error for s in chain if s.skill == "agent")
    assert "are not valid JSON" in sent[1]["messages"][-1]["content"]
    # The turn never run was declared and then withdrawn: the contract reconciles.
    open_ones = [e.action for e in rows(sessions, AuditExpectation, run_id=run_id)
                 if e.acked_at is None and e.withdrawn_at is None]  # fmt: skip
    assert open_ones == []


async def test_max_turns_reached_while_the_tools_work_fails_the_run(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      [Turn.calls(ECHO)],
                                      [agent_step(f"m-{run_id}", max_turns=2),
                                       {"skill": "echo", "input": {"text": "after"}}])  # fmt: skip
    assert (result.status, result.steps_done) == ("failed", 3)
    assert "max_turns (2) reached" in result.reason
    assert [s.skill for s in trace(sessions, run_id)] == ["llm", "echo", "llm"]  # not "after"
    assert len(sent) == 2


async def test_an_agents_budget_caps_its_calls(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      [Turn.calls(ECHO), Turn.reply("x")],
                                      [agent_step(f"m-{run_id}", budget="0.00001")])  # fmt: skip
    assert result.status == "failed_policy" and sent == []  # the model was never called
    assert result.reason.startswith("prevented by the budget: step 0 (llm) would bring the cost")
    assert result.reason.endswith("(the agent's budget 0.00001 of step 0 (agent))")


async def wait_for(handle, check, tries=300):
    for _ in range(tries):
        status = await handle.query("status")
        if check(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id}: never reached the awaited state: {status}")


async def test_a_pause_holds_the_agent_between_turns_and_a_resume_goes_on(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    with chat_server() as server:
        server.script(f"m-{run_id}", [Turn.calls(ECHO).after(1.5), Turn.reply("resumed")])
        llm = settings.model_copy(update={"llm_base_url": server.base_url})
        async with running_worker(dev_env.client, llm, sessions, task_queue):
            payload = {"tenant_id": tenant, "steps": [agent_step(f"m-{run_id}")]}
            handle = await start_run(dev_env.client, task_queue, run_id, payload)
            for _ in range(300):  # the model call is under way (its answer takes 1.5 s)
                if server.bodies():
                    break
                await asyncio.sleep(0.02)
            await handle.signal("pause", {"reason": "MANUAL_PAUSE", "actor": ADMIN})
            paused = await wait_for(handle, lambda s: s["status"] == "paused")
            assert paused["step_index"] == 1  # the model call ran; its tool call waits
            assert [s.skill for s in trace(sessions, run_id)] == ["llm"]
            await asyncio.sleep(0.5)
            assert len(server.bodies()) == 1  # nothing moves while paused
            await handle.signal("resume", {"actor": ADMIN})
            result = await handle.result()
    assert (result.status, result.steps_done) == ("succeeded", 3)
    [pause] = rows(sessions, PauseRecord, run_id=run_id)
    assert (pause.reason, pause.resolution) == ("MANUAL_PAUSE", "RESUMED")


async def test_a_tool_call_a_rule_holds_runs_once_approved(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "review-templates", "SKILL_USED", {"skill": "template"},
             "REQUIRE_APPROVAL")  # fmt: skip
    with chat_server() as server:
        server.script(f"m-{run_id}", [Turn.calls(TEMPLATE), Turn.reply("approved and done")])
        llm = settings.model_copy(update={"llm_base_url": server.base_url})
        async with running_worker(dev_env.client, llm, sessions, task_queue):
            payload = {"tenant_id": tenant, "steps": [agent_step(f"m-{run_id}")]}
            handle = await start_run(dev_env.client, task_queue, run_id, payload)
            held = await wait_for(handle, lambda s: bool(s["pause"] and s["pause"]["approval"]))
            awaited = held["pause"]["approval"]
            assert (awaited["step_index"], awaited["skill"]) == (1, "template")
            assert [s.skill for s in trace(sessions, run_id)] == ["llm"]  # not run yet
            await handle.execute_update("approve_step", {"actor": ADMIN,
                                                         "digest": awaited["digest"]})  # fmt: skip
            result = await handle.result()
    assert (result.status, result.steps_done) == ("succeeded", 3)
    assert [s.skill for s in trace(sessions, run_id)] == ["llm", "template", "llm"]
    [judged] = [r for r in rows(sessions, PreventionRecord, run_id=run_id) if r.step_index == 1]
    assert judged.outcome == "REQUIRE_APPROVAL" and "approved" in judged.reason


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"tools": []}, "input for skill 'agent': tools: List should have at least 1"),
        ({"max_turns": 0}, "max_turns: Input should be greater than or equal to 1"),
        ({"max_turns": MAX_TURNS + 1}, "max_turns: Input should be less than or equal to 50"),
        ({"tools": ["echo", "no_such_skill"]}, "tools: unknown skill 'no_such_skill'"),
        ({"tools": ["agent"]}, "an agent cannot call 'agent'"),
        ({"budget": "5"}, "steps.0.input.budget: 5 exceeds the run's budget 1"),
    ],
)  # fmt: skip
async def test_a_bad_agent_is_refused_at_start_and_nothing_is_written(
    dev_env, settings, sessions, task_queue, run_id, change, problem
):
    tenant = new_tenant(sessions)
    step = agent_step("m")
    step["input"].update(change)
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": [step], "budget": "1"}
    with pytest.raises(RunRequestError, match="invalid run") as refused:
        await start_validated(dev_env.client, task_queue, payload)
    assert problem in str(refused.value)
    # Sent to Temporal anyway (the Temporal CLI): refused before any write.
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id, payload)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert problem in str(failed.value.cause)
    assert getattr(failed.value.cause, "type", None) == "InvalidRunInput"
    assert rows(sessions, Run, id=run_id) == []
    assert rows(sessions, AuditLedgerEntry, tenant_id=tenant) == []


async def test_a_tenant_that_does_not_allow_a_tool_denies_the_agent(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions, allowed_skills=["agent", "llm", "echo"])
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      [Turn.reply("x")], [agent_step(f"m-{run_id}")])  # fmt: skip
    assert (result.status, result.reason) == (
        "failed_policy", f"skills not allowed for tenant {tenant!r}: template")  # fmt: skip
    assert sent == []


async def test_arguments_its_input_refuses_fail_that_tool_step_and_go_back_to_the_model(
    dev_env, settings, sessions, task_queue, run_id
):
    """Valid JSON that does not fit the tool's input: the step is judged like any call of
    the tool, then fails without running (the registry validates first); the model hears
    why and carries on."""
    tenant = new_tenant(sessions)
    turns = [Turn.calls(ToolCall("echo", {"txt": "typo"})), Turn.reply("fixed it myself")]
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      turns, [agent_step(f"m-{run_id}")])  # fmt: skip
    assert (result.status, result.steps_done) == ("succeeded", 3)
    chain = trace(sessions, run_id)
    assert [(s.skill, s.status) for s in chain] == [("llm", "OK"), ("echo", "FAILED"),
                                                    ("llm", "OK")]  # fmt: skip
    assert chain[1].error.startswith("echo: invalid input: text: Field required")
    assert json.loads(sent[1]["messages"][-1]["content"])["error"] == chain[1].error


async def test_a_tool_schema_the_endpoint_rejects_fails_the_run_with_its_message(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    rejected = Turn.failure(400, "Invalid schema for function 'echo': 'text' is not valid.")
    result, sent, _ = await run_agent(dev_env, settings, sessions, task_queue, run_id, tenant,
                                      [rejected], [agent_step(f"m-{run_id}")])  # fmt: skip
    assert (result.status, result.steps_done) == ("failed", 1)
    assert result.reason == (
        "step 0 (agent): the model call of turn 1 failed: llm endpoint answered 400: Invalid "
        "schema for function 'echo': 'text' is not valid.")  # fmt: skip
    [step] = trace(sessions, run_id)  # recorded, and nothing after it
    assert (step.skill, step.status) == ("llm", "FAILED")
