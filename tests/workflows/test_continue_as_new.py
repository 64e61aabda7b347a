"""Long runs continue as new when Temporal suggests it (patch continue-as-new-when-suggested),
on a real dev server whose namespace suggests it early (limit.historyCount.suggestContinueAsNew),
on both databases: the run goes on across several Temporal runs of one workflow id with
every step recorded once, one hash chain, data flowing across the boundary, approvals and
pauses in a continued run; a continuation handed to a fresh start is refused."""

import asyncio
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from clients.runs import control_run, run_histories
from db.models import DomainAck, Run, TraceStep
from db.queries.evidence import run_proof
from domain.ids import run_workflow_id
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from services.audit import reconcile_run
from tests.helpers import add_rule, echo_steps, new_tenant, outcome, rows, running_worker, start_run
from tests.reconcile_support import reconcile_once, report_for

pytestmark = pytest.mark.timeout(180)

SUGGEST_AT = 150  # events: a run of echo steps is suggested to continue every ~15 steps
ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}
CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


@pytest_asyncio.fixture(scope="module")
async def long_env():
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=[
            *SPEED_FLAGS,
            "--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_AT}",
        ],
    )  # fmt: skip
    yield env
    await env.shutdown()


async def awaited_approval(handle) -> dict:
    for _ in range(400):
        pause = (await handle.query("status"))["pause"]
        if pause and pause.get("approval"):
            return pause["approval"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never waited for an approval")


async def held_in_a_continued_run(client, sessions, task_queue, run_id) -> tuple:
    """A 35-step run whose last step a REQUIRE_APPROVAL rule holds, by then in a continued
    Temporal run: (its start handle, a handle on its current run, the awaited approval)."""
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "review-templates", "SKILL_USED", {"skill": "template"},
             "REQUIRE_APPROVAL")  # fmt: skip
    steps = [*echo_steps(34), {"skill": "template", "input": {"template": "late"}}]
    handle = await start_run(client, task_queue, run_id, {"tenant_id": tenant, "steps": steps})
    latest = client.get_workflow_handle(handle.id)  # whichever Temporal run is current
    approval = await awaited_approval(latest)
    assert (await latest.describe()).run_id != handle.result_run_id  # held in a continued run
    return handle, latest, approval


async def test_a_long_run_continues_as_new_and_goes_on_where_it_was(
    long_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    steps = [{"id": "first", "skill": "echo", "input": {"text": "from the first run"}},
             *echo_steps(38),
             {"skill": "echo", "input": {"text": {"$ref": "steps.first.output.text"}}}]  # fmt: skip
    client = long_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(client, task_queue, run_id, {"tenant_id": tenant, "steps": steps})
        result = await handle.result()
        runs = [h.events for h in await run_histories(client, handle.id, handle.result_run_id)]
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 40)
    assert len(runs) >= 3, [len(events) for events in runs]
    assert all(events[-1].event_type == CONTINUED for events in runs[:-1])
    # Every history stays near the suggestion: none grows with the run's length.
    assert max(len(events) for events in runs) < SUGGEST_AT + 60, [len(e) for e in runs]

    traced = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [s.step_index for s in traced] == list(range(40))  # each once, in order
    assert traced[39].input == {"text": "from the first run"}  # across the boundaries
    with sessions() as session:
        proof = run_proof(session, run_id)
    assert proof.status == "VERIFIED", proof
    (row,) = rows(sessions, Run, id=run_id)
    assert (row.phase, row.steps_done) == ("COMPLETED", 40)
    assert row.cost == result.cost
    # Every declared action acked once (authorize and finalize_run included), however many
    # Temporal runs the run took, and nothing is missing.
    acks = [(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)]
    assert len(acks) == len(set(acks)) and ("orchestrator", "finalize_run") in acks
    assert ("runs", "authorize") in acks and ("traces", "record_step:39") in acks
    assert reconcile_run(sessions, run_id).missing == []


async def test_a_continued_run_is_held_for_an_approval_and_goes_on_once_approved(
    long_env, settings, sessions, task_queue, run_id
):
    client = long_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle, latest, approval = await held_in_a_continued_run(client, sessions,
                                                                 task_queue, run_id)  # fmt: skip
        assert approval["step_index"] == 34
        await control_run(client, run_id, "approve", {"actor": ADMIN, "digest": approval["digest"]})
        result = await handle.result()
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 35)
    traced = rows(sessions, TraceStep, run_id=run_id)
    assert sorted(s.step_index for s in traced) == list(range(35))


async def test_a_continuation_given_to_a_fresh_start_is_refused(
    long_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    forged = {"next_index": 3, "segment": 1, "cost": "0", "phase": "EXECUTING"}
    client = long_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await client.start_workflow(
            "RunWorkflow",
            args=[{"tenant_id": tenant, "steps": echo_steps(4)}, forged],
            id=run_workflow_id(run_id),
            task_queue=task_queue,
        )
        with pytest.raises(Exception) as caught:
            await outcome(handle)
    assert "expected one JSON object, got 2 payloads" in str(caught.value.cause)
    assert rows(sessions, Run, id=run_id) == []  # nothing written


async def test_the_reconciliation_follows_a_run_into_its_continued_execution(
    long_env, settings, sessions, task_queue, run_id
):
    """The row names the execution that opened the run, which CONTINUED_AS_NEW: the
    cross-check of open runs asks about the latest one instead — left alone while it runs,
    STALE once it is terminated (before, the opener's CONTINUED_AS_NEW hid it for good)."""
    client = long_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle, latest, _ = await held_in_a_continued_run(client, sessions, task_queue, run_id)
        running = await reconcile_once(client, task_queue)
        assert running.totals.open_runs_checked >= 1 and report_for(running, run_id) is None
        await latest.terminate("operator: temporal workflow terminate")
        terminated = await reconcile_once(client, task_queue)
    report = report_for(terminated, run_id)
    assert report is not None, "the terminated continued run was not found"
    assert (report.verdict, report.workflow_state, report.run_failed) == (
        "STALE", "TERMINATED", True)  # fmt: skip
    (row,) = rows(sessions, Run, id=run_id)
    assert (row.phase, row.status) == ("FAILED", "failed")


async def test_a_run_that_continued_after_an_agent_step_ends_with_its_own_outcome(
    long_env, settings, sessions, task_queue, run_id
):
    """An agent's calls are steps declared as it goes (steps_total grows): the continued
    run carries them, so a later failure fails the run for that reason with every declared
    step accounted for — not rolled back as incomplete."""
    tenant = new_tenant(sessions)
    steps = [
        {"id": "triage", "skill": "agent", "input": {
            "model": f"m-{run_id}", "prompt": "Triage ticket 42.", "tools": ["echo"]}},
        *echo_steps(30),
        {"skill": "template", "input": {"template": "$nope"}},  # fails: no variable nope
    ]  # fmt: skip
    turns = [Turn.calls(ToolCall("echo", {"text": "ticket 42"})), Turn.reply("P1")]
    client = long_env.client
    with chat_server() as server:
        server.script(f"m-{run_id}", turns)
        llm = settings.model_copy(update={"llm_base_url": server.base_url})
        async with running_worker(client, llm, sessions, task_queue):
            handle = await start_run(client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            latest = client.get_workflow_handle(handle.id)
            result = await handle.result()
            status = await latest.query("status")
            runs = [h.events for h in await run_histories(client, handle.id, handle.result_run_id)]
    assert len(runs) >= 2, [len(events) for events in runs]
    # 3 agent steps (2 model calls, 1 tool call) + 30 echo steps + the failing template
    assert (result.phase, result.status, result.steps_done) == ("FAILED", "failed", 34)
    assert "step 31 (template) failed" in result.reason, result.reason
    assert not result.rolled_back
    assert (status["step_index"], status["steps_total"]) == (34, 34)
    assert reconcile_run(sessions, run_id).missing == []
    (row,) = rows(sessions, Run, id=run_id)
    assert (row.phase, row.status, row.steps_total) == ("FAILED", "failed", 34)


async def test_a_continuation_a_retried_run_is_handed_is_refused(
    long_env, settings, sessions, task_queue, run_id
):
    """A retry (like a cron run) follows the run before it — continued_run_id is set — but a
    continuation must name the run it comes from, which a forger cannot know, and a retry
    never takes one: refused, nothing written. The first attempt times out with no worker
    polling; the second is the one that meets the continuation."""
    tenant = new_tenant(sessions)
    forged = {"continued_from": "whatever", "next_index": 3, "segment": 1, "phase": "EXECUTING",
              "status": "running", "seq": 2, "steps_done": 3, "steps_total": 4, "cost": "0",
              "budget": None, "prev_hash": "0" * 64, "traced": False, "patches": {},
              "skills_used": [], "outputs": {}, "config": {}, "consumed_digests": [],
              "pauses": 0, "refusals_recorded": 0, "started_at": None, "run_deadline": None,
              "baseline": {}, "last_check_at": None, "checked_at_open": False,
              "steps_since_check": 0, "forced": False, "budget_warned": False,
              "agent_tools": []}  # fmt: skip
    client = long_env.client
    handle = await client.start_workflow(
        "RunWorkflow",
        args=[{"tenant_id": tenant, "steps": echo_steps(4)}, forged],
        id=run_workflow_id(run_id),
        task_queue=task_queue,
        run_timeout=timedelta(seconds=1),
        retry_policy=RetryPolicy(maximum_attempts=2, initial_interval=timedelta(seconds=1)),
    )
    await asyncio.sleep(2.5)  # the first attempt timed out, unrun: the retry is scheduled
    async with running_worker(client, settings, sessions, task_queue):
        with pytest.raises(WorkflowFailureError) as caught:
            await client.get_workflow_handle(handle.id).result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRunInput"
    assert "continuation: refused, this run was not continued as new from run 'whatever'" in (
        cause.message)  # fmt: skip
    assert "attempt 2" in cause.message
    assert rows(sessions, Run, id=run_id) == []
