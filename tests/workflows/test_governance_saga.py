"""GOVERNANCE_CHECK as a saga: all governance writes commit, or all are compensated.

Fault matrix: every governance step × {fails before its write, completion lost once,
fails after its write, its compensation fails on the first attempt}. Each run has a
BLOCKED rule that stops its second step before it runs, and a WARNED cost rule, so that
governance writes an evaluation with prevention records and a limit breach, an incident,
and the trace completion. The records judged before a step are no write of the saga: they
stay COMMITTED whatever the saga does.
"""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError

from db.models import (
    AuditExpectation,
    AuditLedgerEntry,
    DomainAck,
    Incident,
    LimitBreach,
    OutboxEvent,
    PolicyEvaluation,
    PreventionRecord,
    Run,
    Trace,
)
from tests.faults import (
    AFTER,
    AFTER_ONCE,
    BEFORE,
    FIRST_ATTEMPT,
    LEAVES_UNMET,
    SLOW_AFTER,
    UNMET,
    activities_with_faults,
)
from tests.helpers import add_rule, echo_steps, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

STEPS = ["policies.evaluate", "incidents.create_for_run", "traces.complete"]
COMPENSATION_OF = {
    "policies.evaluate": "policies.rollback_evaluation",
    "incidents.create_for_run": "incidents.rollback",
    "traces.complete": "traces.revert_completion",
}
GOVERNANCE_TOPICS = {"policy.evaluated", "incident.created", "trace.completed", "run.completed",
                     "run.failed"}  # fmt: skip


STEPS_RUN = [*echo_steps(1), {"skill": "template", "input": {"template": "never rendered"}}]


def governed_tenant(sessions) -> str:
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    add_rule(sessions, tenant, "tiny-cost", "MAX_COST", {"max": "0"}, "WARNED")
    return tenant


def assert_no_duplicates(sessions, run_id):
    acks = Counter((a.domain, a.action, a.status) for a in rows(sessions, DomainAck, run_id=run_id))
    assert all(n == 1 for n in acks.values()), acks
    assert len(rows(sessions, PolicyEvaluation, run_id=run_id)) <= 1
    assert len(rows(sessions, Incident, source_run_id=run_id)) <= 1
    assert len(rows(sessions, Trace, run_id=run_id)) == 1


def evaluation_records(sessions, run_id):
    """The prevention records of the run's evaluation (not those judged before a step)."""
    return [r for r in rows(sessions, PreventionRecord, run_id=run_id) if r.step_index is None]


def assert_step_judgements_kept(sessions, run_id):
    judged = [
        (r.step_index, r.rule_name, r.outcome, r.status)
        for r in rows(sessions, PreventionRecord, run_id=run_id)
        if r.step_index is not None
    ]
    assert sorted(judged) == [(0, "tiny-cost", "WARNED", "COMMITTED"),
                              (1, "no-template", "BLOCKED", "COMMITTED")], judged  # fmt: skip


def assert_all_committed(sessions, run_id):
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status) == ("FAILED", "failed_policy")  # the BLOCKED rule
    assert "prevented by rule 'no-template' (BLOCKED)" in run.failure_reason
    assert [e.status for e in rows(sessions, PolicyEvaluation, run_id=run_id)] == ["COMMITTED"]
    assert {r.status for r in evaluation_records(sessions, run_id)} == {"COMMITTED"}
    assert_step_judgements_kept(sessions, run_id)
    assert [b.status for b in rows(sessions, LimitBreach, run_id=run_id)] == ["COMMITTED"]
    assert [i.status for i in rows(sessions, Incident, source_run_id=run_id)] == ["OPEN"]
    assert rows(sessions, Trace, run_id=run_id)[0].status == "COMPLETED"
    topics = {e.topic for e in rows(sessions, OutboxEvent, run_id=run_id)}
    assert {"policy.evaluated", "incident.created", "trace.completed", "run.failed"} <= topics
    assert not any(a.rolled_back for a in rows(sessions, DomainAck, run_id=run_id))


def assert_all_rolled_back(sessions, run_id, cause: str, published: str = "GOVERNANCE_ROLLBACK"):
    """``published``: the cause of the one ``run.failed`` the run publishes, its only
    governance event."""
    run = rows(sessions, Run, id=run_id)[0]
    assert run.phase == "FAILED" and run.status in ("failed", "cancelled")
    assert run.failure_reason and cause in run.failure_reason, run.failure_reason
    written = {
        "policies": rows(sessions, PolicyEvaluation, run_id=run_id),
        "incidents": rows(sessions, Incident, source_run_id=run_id),
    }
    rolled_back_acks = {(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)
                        if a.rolled_back}  # fmt: skip
    ledger = {
        (e.entity_type, e.entity_id)
        for e in rows(sessions, AuditLedgerEntry, event_type="ROLLBACK")
        if (e.after_state or {}).get("run_id") == run_id
    }
    for evaluation in written["policies"]:
        assert evaluation.status == "ROLLED_BACK" and evaluation.rollback_reason
        assert ("policies", "evaluate_policy") in rolled_back_acks
        assert ("policy_evaluation", evaluation.id) in ledger
        assert {r.status for r in evaluation_records(sessions, run_id)} == {"ROLLED_BACK"}
        assert_step_judgements_kept(sessions, run_id)
        assert {b.status for b in rows(sessions, LimitBreach, run_id=run_id)} == {"ROLLED_BACK"}
    for incident in written["incidents"]:
        assert incident.status == "ROLLED_BACK"
        assert ("incidents", "create_incident") in rolled_back_acks
        assert ("incident", incident.id) in ledger
    trace = rows(sessions, Trace, run_id=run_id)[0]
    assert trace.status in ("RUNNING", "COMPLETION_ROLLED_BACK")
    if trace.status == "COMPLETION_ROLLED_BACK":
        assert ("traces", "complete_trace") in rolled_back_acks
        assert ("trace", trace.id) in ledger
    events = [e for e in rows(sessions, OutboxEvent, run_id=run_id) if e.topic in GOVERNANCE_TOPICS]
    assert [(e.topic, e.payload.get("cause")) for e in events] == [("run.failed", published)]
    assert events[0].payload["status"] == run.status


async def run_with_faults(dev_env, settings, sessions, task_queue, run_id, faults):
    tenant = governed_tenant(sessions)
    acts = activities_with_faults(settings, sessions, faults)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": STEPS_RUN})  # fmt: skip
        return await handle.result()


async def test_no_fault_commits_everything(dev_env, settings, sessions, task_queue, run_id):
    result = await run_with_faults(dev_env, settings, sessions, task_queue, run_id, {})
    assert result.incident_id and result.policy_outcome == "PREVENTED"
    assert result.steps_done == 1  # the template step never ran
    assert_all_committed(sessions, run_id)
    assert_no_duplicates(sessions, run_id)


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("mode", [BEFORE, AFTER])
async def test_step_failure_compensates_all(dev_env, settings, sessions, task_queue, run_id,
                                            step, mode):  # fmt: skip
    result = await run_with_faults(dev_env, settings, sessions, task_queue, run_id, {step: mode})
    assert result.rolled_back and result.status == "failed"
    assert_all_rolled_back(sessions, run_id, f"injected: {step} {mode}")
    assert_no_duplicates(sessions, run_id)


@pytest.mark.parametrize("step", STEPS)
async def test_lost_completion_is_retried_without_duplicates(
    dev_env, settings, sessions, task_queue, run_id, step
):
    result = await run_with_faults(dev_env, settings, sessions, task_queue, run_id,
                                   {step: AFTER_ONCE})  # fmt: skip
    assert not result.rolled_back
    assert_all_committed(sessions, run_id)
    assert_no_duplicates(sessions, run_id)


@pytest.mark.parametrize("step", STEPS)
async def test_compensation_failing_first_attempt_is_retried(
    dev_env, settings, sessions, task_queue, run_id, step
):
    # Every step commits; the run's own reconciliation then finds an expectation nobody
    # met, so every compensation runs, and each fails once before it succeeds.
    faults = {COMPENSATION_OF[step]: FIRST_ATTEMPT, "policies.evaluate": LEAVES_UNMET}
    result = await run_with_faults(dev_env, settings, sessions, task_queue, run_id, faults)
    assert result.rolled_back
    assert_all_rolled_back(sessions, run_id, f"own reconciliation INCOMPLETE: missing=[{UNMET}]")
    assert_no_duplicates(sessions, run_id)


async def test_cancellation_during_governance_compensates(dev_env, settings, sessions,
                                                          task_queue, run_id):  # fmt: skip
    """`temporal workflow cancel` while a governance write is in progress.

    Local activities see a cancellation at the next workflow-task heartbeat (80% of the
    task timeout); a 2 s task timeout makes that prompt for the test.
    """
    tenant = governed_tenant(sessions)
    acts = activities_with_faults(settings, sessions, {"incidents.create_for_run": SLOW_AFTER})
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": STEPS_RUN},
                                 task_timeout=timedelta(seconds=2))  # fmt: skip
        for _ in range(100):
            if rows(sessions, Incident, source_run_id=run_id):
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        description = await handle.describe()
    assert description.status.name == "CANCELED"
    assert_all_rolled_back(sessions, run_id, "cancelled", published="CANCELLED")
    assert rows(sessions, Run, id=run_id)[0].status == "cancelled"
    assert_no_duplicates(sessions, run_id)


async def test_cancelled_right_after_start_is_finalized(dev_env, settings, sessions, task_queue,
                                                        run_id):  # fmt: skip
    """A cancel that lands before the run row was known still leaves a closed, FAILED run."""
    tenant = new_tenant(sessions)
    handle = await start_run(dev_env.client, task_queue, run_id,
                             {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
    await handle.cancel()  # before any worker has picked the run up
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status) == ("FAILED", "cancelled")
    open_expectations = [e for e in rows(sessions, AuditExpectation, run_id=run_id)
                         if e.acked_at is None and e.withdrawn_at is None]  # fmt: skip
    assert open_expectations == []
    failed = rows(sessions, OutboxEvent, run_id=run_id, topic="run.failed")
    assert [(e.payload["cause"], e.payload["status"]) for e in failed] == [
        ("CANCELLED", "cancelled")
    ]
