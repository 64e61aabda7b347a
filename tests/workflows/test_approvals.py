"""Approval before sensitive steps (real dev server, both databases): a REQUIRE_APPROVAL rule
holds the step it matches, the run pauses (APPROVAL_REQUIRED), and only an approval of that
step's digest, from an authority that may lift the pause, lets it run — once."""

import asyncio

import pytest

from clients.runs import ControlRefusedError, control_run
from db.models import AuditLedgerEntry, PauseRecord, PreventionRecord, TraceStep
from tests.helpers import add_rule, echo_steps, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}
USER = {"id": "u-1", "authority": "TENANT_USER"}


def template(text: str) -> dict:
    return {"skill": "template", "input": {"template": text}}


def count_steps(sessions, run_id) -> int:
    return len(rows(sessions, TraceStep, run_id=run_id))


async def awaited_approval(handle, step_index: int) -> dict:
    for _ in range(200):
        pause = (await handle.query("status"))["pause"]
        if pause and pause.get("approval") and pause["approval"]["step_index"] == step_index:
            return pause["approval"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never waited for the approval of step {step_index}")


async def refused(client, run_id, name, payload) -> ControlRefusedError:
    with pytest.raises(ControlRefusedError) as caught:
        await control_run(client, run_id, name, payload)
    return caught.value


async def test_a_step_runs_only_once_its_digest_is_approved(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "review-templates", "SKILL_USED", {"skill": "template"},
             "REQUIRE_APPROVAL")  # fmt: skip
    steps = [*echo_steps(1), template("first"), template("second")]
    client = dev_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(client, task_queue, run_id, {"tenant_id": tenant, "steps": steps})
        first = await awaited_approval(handle, 1)
        status = await handle.query("status")
        assert (status["status"], status["step_index"]) == ("paused", 1)
        assert status["pause"]["reason"] == "APPROVAL_REQUIRED"
        assert (first["skill"], first["rule_name"]) == ("template", "review-templates")
        assert count_steps(sessions, run_id) == 1  # the template step has not run

        wrong = await refused(client, run_id, "approve", {"actor": ADMIN, "digest": "0" * 64})
        assert wrong.kind == "ControlNotApplicable" and "not for the step awaited" in str(wrong)
        user = await refused(client, run_id, "approve", {"actor": USER, "digest": first["digest"]})
        assert user.kind == "ControlNotAllowed" and "TENANT_USER may not approve" in str(user)
        resume = await refused(client, run_id, "resume", {"actor": ADMIN})
        assert "waits for the approval of step 1" in str(resume)
        # The same through the signal: refused and audited, the run stays held.
        await handle.signal("approve", {"actor": ADMIN, "digest": "f" * 64})

        await control_run(client, run_id, "approve", {"actor": ADMIN, "digest": first["digest"]})
        second = await awaited_approval(handle, 2)
        assert second["digest"] != first["digest"]
        reused = await refused(
            client, run_id, "approve", {"actor": ADMIN, "digest": first["digest"]}
        )
        assert "already used" in str(reused)
        await control_run(client, run_id, "approve", {"actor": ADMIN, "digest": second["digest"]})
        result = await handle.result()
    assert (result.status, result.steps_done) == ("succeeded", 3)
    assert count_steps(sessions, run_id) == 3
    pauses = sorted(rows(sessions, PauseRecord, run_id=run_id), key=lambda p: p.paused_at)
    assert [(p.reason, p.resolution, p.resolved_by) for p in pauses] == [
        ("APPROVAL_REQUIRED", "APPROVED", "ops-1"),
        ("APPROVAL_REQUIRED", "APPROVED", "ops-1"),
    ]
    entries = [e.after_state for e in rows(sessions, AuditLedgerEntry, event_type="PAUSE_APPROVED")]
    assert {e["digest"] for e in entries if e["run_id"] == run_id} == {
        first["digest"],
        second["digest"],
    }
    judged = sorted(
        (r.step_index, r.outcome)
        for r in rows(sessions, PreventionRecord, run_id=run_id)
        if r.step_index is not None
    )
    assert judged == [(1, "REQUIRE_APPROVAL"), (2, "REQUIRE_APPROVAL")]
    refusals = [
        e.after_state for e in rows(sessions, AuditLedgerEntry, event_type="SIGNAL_REFUSED")
    ]
    refusals = [r for r in refusals if r["run_id"] == run_id]
    assert [r["signal"] for r in refusals] == ["approve"]
    assert "not for the step awaited" in refusals[0]["reason"]


async def test_a_stop_ends_a_run_waiting_for_an_approval(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "ask", "MAX_STEPS", {"max": 0}, "REQUIRE_APPROVAL")
    client = dev_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        await awaited_approval(handle, 0)
        await control_run(client, run_id, "stop", {"actor": ADMIN, "reason": "not today"})
        result = await handle.result()
    assert (result.status, result.steps_done) == ("cancelled", 0)
    assert count_steps(sessions, run_id) == 0


async def test_budget_warning_pauses_once_when_the_threshold_is_crossed(
    dev_env, settings, sessions, task_queue, run_id
):
    """The tenant's 50 % of a 0.0004 budget: after the second echo step (0.0002) the run
    holds (BUDGET_WARNING, which only TENANT_ADMIN may lift), then runs to the end without
    pausing again."""
    tenant = new_tenant(sessions, governance={"budget_warning_percent": 50})
    client = dev_env.client
    async with running_worker(client, settings, sessions, task_queue):
        payload = {"tenant_id": tenant, "steps": echo_steps(4), "budget": "0.0004"}
        handle = await start_run(client, task_queue, run_id, payload)
        for _ in range(200):
            status = await handle.query("status")
            if status["pause"]:
                break
            await asyncio.sleep(0.05)
        assert (status["pause"]["reason"], status["step_index"]) == ("BUDGET_WARNING", 2)
        user = await refused(client, run_id, "resume", {"actor": USER})
        assert user.kind == "ControlNotAllowed"
        await control_run(client, run_id, "resume", {"actor": ADMIN})
        result = await handle.result()
    assert (result.status, result.steps_done) == ("succeeded", 4)
    pauses = rows(sessions, PauseRecord, run_id=run_id)
    assert [(p.reason, p.resolution) for p in pauses] == [("BUDGET_WARNING", "RESUMED")]


async def test_the_web_ui_shows_why_a_run_waits(dev_env, settings, sessions, task_queue, run_id):
    """Static summary and details from the start, current details while held, a summary on
    every step activity: what the Web UI shows without reading the history."""
    from temporalio.api.enums.v1 import EventType

    from clients.runs import start_run as start_through_client

    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "review", "SKILL_USED", {"skill": "template"}, "REQUIRE_APPROVAL")
    client = dev_env.client
    payload = {"run_id": run_id, "tenant_id": tenant, "budget": "1",
               "steps": [*echo_steps(1), template("x")]}  # fmt: skip
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_through_client(client, task_queue, payload)
        awaited = await awaited_approval(handle, 1)
        description = await handle.describe()
        assert await description.static_summary() == f"{tenant}: 2 steps, budget 1"
        assert "1. echo\n2. template" in await description.static_details()
        metadata = await handle.query("__temporal_workflow_metadata")
        details = metadata.current_details
        assert "**EXECUTING paused** · step 1/2" in details
        assert "**paused** (APPROVAL_REQUIRED)" in details
        assert "**may resume**: TENANT_ADMIN, FOUNDER_ONLY" in details
        assert f"starter.py approve {run_id} --digest {awaited['digest']}" in details
        await control_run(client, run_id, "approve", {"actor": ADMIN, "digest": awaited["digest"]})
        await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata")
    assert metadata.current_details.startswith("**COMPLETED succeeded** · step 2/2")
    history = await handle.fetch_history()
    summaries = [
        client.data_converter.payload_converter.from_payload(e.user_metadata.summary)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert summaries == ["step 1/2 echo", "step 2/2 template", "step 2/2 template"]
