"""RunWorkflow on the real dev server against both databases."""

from decimal import Decimal

import pytest

from db.models import (
    AuditExpectation,
    DomainAck,
    Incident,
    OutboxEvent,
    PolicyEvaluation,
    Run,
    RunPhaseTransition,
    Trace,
    TraceStep,
)
from domain.hashchain import first_broken_link, step_content
from tests.helpers import count, echo_steps, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(60)


async def test_successful_multi_step_run(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(
            dev_env.client, task_queue, run_id, {"tenant_id": tenant, "steps": echo_steps(3)}
        )
        result = await handle.result()
    assert result.status == "succeeded" and result.phase == "COMPLETED"
    assert result.steps_done == 3
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status, run.steps_done) == ("COMPLETED", "succeeded", 3)
    phases = [
        t.to_phase
        for t in sorted(rows(sessions, RunPhaseTransition, run_id=run_id), key=lambda t: t.seq)
    ]
    assert phases == [
        "CREATED",
        "AUTHORIZED",
        "EXECUTING",
        "GOVERNANCE_CHECK",
        "FINALIZING",
        "COMPLETED",
    ]
    steps = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [s.output["text"] for s in steps] == ["step 0", "step 1", "step 2"]
    assert (
        first_broken_link((s.step_index, s.prev_hash, s.hash, _content(s)) for s in steps) is None
    )
    trace = rows(sessions, Trace, run_id=run_id)[0]
    assert (
        trace.status == "COMPLETED" and trace.head_hash == steps[-1].hash and trace.step_count == 3
    )
    expectations = rows(sessions, AuditExpectation, run_id=run_id)
    assert len(expectations) == 8  # authorize, start, 3 steps, evaluate, complete, finalize
    assert all(e.acked_at is not None and e.deadline is not None for e in expectations)
    assert count(sessions, PolicyEvaluation, run_id=run_id) == 1
    assert count(sessions, Incident, source_run_id=run_id) == 0
    topics = sorted(e.topic for e in rows(sessions, OutboxEvent, run_id=run_id))
    assert topics == [
        "policy.evaluated",
        "run.completed",
        "run.started",
        "trace.completed",
        "trace.started",
    ]
    assert count(sessions, DomainAck, run_id=run_id) == 8


async def test_denied_run_fails_with_incident(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions, budget=Decimal("1"))
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(
            dev_env.client,
            task_queue,
            run_id,
            {"tenant_id": tenant, "steps": echo_steps(1), "budget": "5"},
        )
        result = await handle.result()
    assert (result.phase, result.status) == ("FAILED", "failed_policy")
    assert "exceeds the tenant's limit" in result.reason
    run = rows(sessions, Run, id=run_id)[0]
    assert run.authorization_decision == "DENIED"
    incidents = rows(sessions, Incident, source_run_id=run_id)
    assert [i.category for i in incidents] == ["AUTHORIZATION_DENIED"]
    assert count(sessions, TraceStep, run_id=run_id) == 0


def _content(step):
    return step_content(
        run_id=step.run_id,
        step_index=step.step_index,
        skill=step.skill,
        input=step.input,
        output=step.output,
        cost=step.cost,
        status=step.status,
        error=step.error,
    )
