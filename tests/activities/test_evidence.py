"""Run evidence, run proof and the governance log, read from runs that really ran.

Every run goes through RunWorkflow on the dev server against both databases; faults
are injected by registering a failing activity under the real activity's name.
"""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete, update
from temporalio import activity
from temporalio.exceptions import ApplicationError

from clients.candidates import submit_candidate
from db.models import AuditLedgerEntry, Trace, TraceStep
from db.queries.evidence import UnknownRunError, governance_log, run_evidence, run_proof
from domain.ids import run_workflow_id
from domain.models import RunStatusView
from runtime.worker_factory import build_activities
from services import tenants
from services.control import request_stop
from tests.helpers import (
    RunHandle,
    add_rule,
    echo_steps,
    new_tenant,
    rows,
    running_worker,
    start_run,
)
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)


def new_run_id() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def replaced(settings, sessions, *fakes):
    """The real activities with some replaced by fakes of the same name."""
    names = {activity._Definition.must_from_callable(f).name for f in fakes}
    with httpx.Client() as http:
        real = build_activities(settings, sessions, http)
    keep = [a for a in real if activity._Definition.must_from_callable(a).name not in names]
    return keep + list(fakes)


@activity.defn(name="traces.complete")
def trace_completion_fails(_req: dict) -> None:
    raise ApplicationError("trace store rejected the completion", non_retryable=True)


@activity.defn(name="traces.start")
def trace_store_down(_req: dict) -> None:
    raise ConnectionError("trace store unreachable")


async def wait_paused(handle) -> RunStatusView:
    for _ in range(200):
        view = await handle.query(RunWorkflow.status_query)
        if view.pause is not None:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError("run never paused")


def read(sessions, query, run_id, tenant_id=None):
    with sessions() as session:
        return query(session, run_id, tenant_id)


async def test_evidence_of_a_governed_run(dev_env, settings, sessions, task_queue, run_id):
    """Incidents, PREVENTED/WARNED records (judged before a step and in the evaluation),
    limit breaches and every decision (BLOCKED: the next test)."""
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    add_rule(sessions, tenant, "free-only", "MAX_COST", {"max": "0.00015"}, "PREVENTED")
    add_rule(sessions, tenant, "one-step", "MAX_STEPS", {"max": 0}, "WARNED")
    user = {"id": "user-1", "authority": "TENANT_USER"}
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = RunHandle(await dev_env.client.start_workflow(
            RunWorkflow.run,
            {"tenant_id": tenant, "steps": echo_steps(3)},
            id=run_workflow_id(run_id),
            task_queue=task_queue,
            start_signal="pause",
            start_signal_args=[{"reason": "MANUAL_PAUSE", "actor": user}],
        ))  # fmt: skip
        await wait_paused(handle)
        await handle.signal("resume", {"actor": {"id": "bot-1", "authority": "SYSTEM_AUTO"}})
        request_stop(sessions, run_id, "enough of this", actor="ops-1")
        await handle.signal("resume", {"actor": {"id": "admin-1", "authority": "TENANT_ADMIN"}})
        result = await handle.result()
        candidate = {
            "candidate_id": f"c-{uuid.uuid4().hex[:12]}",
            "tenant_id": tenant,
            "correlation_rule_id": "rule-stops",
            "correlation_rule_version": "1",
            "signal_count": 4,
            "severity": "HIGH",
            "service": "checkout",
            "source_run_id": run_id,
            "metadata": {"policy_id": "default", "policy_version": "1"},
        }
        _, promotion = await submit_candidate(dev_env.client, sessions, task_queue, candidate)
        promoted = await promotion.result()
    assert (result.phase, result.status) == ("FAILED", "cancelled")

    evidence = read(sessions, run_evidence, run_id)
    assert (evidence.run_id, evidence.tenant_id, evidence.status) == (run_id, tenant, "cancelled")
    [incident, candidate_incident] = evidence.incidents
    assert incident.severity == "HIGH" and incident.status == "OPEN" and not incident.rolled_back
    assert run_id in incident.title
    assert candidate_incident.id == promoted.incident_id

    [evaluation] = evidence.policy_evaluations
    assert evaluation.outcome == "PREVENTED" and not evaluation.rolled_back
    outcomes = {r.rule_name: r.outcome for r in evaluation.prevention_records}
    assert outcomes == {"mid_execution": "PREVENTED", "one-step": "WARNED"}  # one step ran
    judged = [(r.step_index, r.rule_name, r.outcome) for r in evidence.decisions.step_judgements]
    assert judged == [(0, "one-step", "WARNED")]  # the stop came before step 1 was judged
    breaches = {b.limit_type: b for b in evaluation.limit_breaches}
    assert set(breaches) == {"MAX_STEPS"}
    assert breaches["MAX_STEPS"].value == 1 and breaches["MAX_STEPS"].threshold == 0
    assert all(b.value > b.threshold for b in breaches.values())

    decisions = evidence.decisions
    assert decisions.authorization.decision == "ALLOWED"
    assert [(c.step_index, c.decision) for c in decisions.policy_checks] == [
        (0, "CONTINUE"),
        (1, "TERMINATE"),
    ]
    assert decisions.policy_checks[1].violations == ["MANUAL_STOP"]
    [pause] = decisions.pauses
    assert (pause.reason, pause.paused_by, pause.paused_by_authority) == (
        "MANUAL_PAUSE",
        "user-1",
        "TENANT_USER",
    )
    assert (pause.resolution, pause.resolved_by) == ("RESUMED", "admin-1")
    assert "SYSTEM_AUTO" not in pause.resumable_by
    control = {c.kind: c for c in decisions.control}
    assert set(control) == {"RESUME_REFUSED", "STOP_REQUESTED", "STOPPED"}
    assert (control["RESUME_REFUSED"].actor_id, control["RESUME_REFUSED"].actor_authority) == (
        "bot-1",
        "SYSTEM_AUTO",
    )
    assert "may not resume" in control["RESUME_REFUSED"].reason
    assert control["STOP_REQUESTED"].actor_id == "ops-1"
    assert control["STOP_REQUESTED"].reason == "enough of this"
    [decision] = decisions.promotions
    assert (decision.candidate_id, decision.decision) == (candidate["candidate_id"], "PROMOTE")
    assert decision.incident_id == promoted.incident_id and decision.policy == "default v1"

    with pytest.raises(UnknownRunError):
        read(sessions, run_evidence, run_id, tenant_id="someone-else")


async def test_rolled_back_rows_are_shown_as_such(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "free-only", "MAX_COST", {"max": "0.00015"}, "BLOCKED")
    add_rule(sessions, tenant, "one-step", "MAX_STEPS", {"max": 0}, "WARNED")
    acts = replaced(settings, sessions, trace_completion_fails)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(
            dev_env.client, task_queue, run_id, {"tenant_id": tenant, "steps": echo_steps(2)}
        )
        result = await handle.result()
    assert result.phase == "FAILED" and result.rolled_back

    evidence = read(sessions, run_evidence, run_id, tenant)
    [incident] = evidence.incidents
    assert (incident.status, incident.rolled_back) == ("ROLLED_BACK", True)
    assert "trace store rejected" in incident.rollback_reason
    [evaluation] = evidence.policy_evaluations
    assert evaluation.rolled_back and evaluation.status == "ROLLED_BACK"
    assert {r.outcome for r in evaluation.prevention_records} == {"PREVENTED", "WARNED"}
    # Judged before steps 0 and 1 (step 1 stopped): facts, not saga writes — kept.
    judged = [(r.step_index, r.rule_name, r.outcome, r.status, r.rolled_back)
              for r in evidence.decisions.step_judgements]  # fmt: skip
    assert judged == [(0, "one-step", "WARNED", "COMMITTED", False),
                      (1, "free-only", "BLOCKED", "COMMITTED", False)]  # fmt: skip
    assert all(r.rolled_back for r in evaluation.prevention_records)
    [breach] = evaluation.limit_breaches
    assert (breach.limit_type, breach.value, breach.threshold) == ("MAX_STEPS", 1, 0)
    assert breach.rolled_back and breach.status == "ROLLED_BACK"

    proof = read(sessions, run_proof, run_id)
    assert proof.status == "VERIFIED" and proof.step_count == 1
    assert proof.stored_head_matches is None and "not completed" in proof.reason


async def test_proof_verified_then_failed_when_a_step_row_is_edited(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(
            dev_env.client, task_queue, run_id, {"tenant_id": tenant, "steps": echo_steps(3)}
        )
        await handle.result()

    proof = read(sessions, run_proof, run_id)
    trace = rows(sessions, Trace, run_id=run_id)[0]
    assert (proof.status, proof.method, proof.step_count) == ("VERIFIED", "HASH_CHAIN", 3)
    assert proof.head_hash == trace.head_hash and proof.stored_head_matches is True
    assert proof.failed_step is None

    def set_output(index: int, output: dict) -> None:
        with sessions.begin() as session:
            session.execute(
                update(TraceStep)
                .where(TraceStep.run_id == run_id, TraceStep.step_index == index)
                .values(output=output)
            )

    set_output(1, {"text": "step 1, edited"})
    proof = read(sessions, run_proof, run_id)
    assert (proof.status, proof.failed_step) == ("FAILED", 1)
    assert proof.reason.startswith("step 1:") and "altered" in proof.reason

    set_output(1, {"text": "step 1"})  # the original content verifies again
    assert read(sessions, run_proof, run_id).status == "VERIFIED"

    with sessions.begin() as session:  # the last step disappears: the stored head disagrees
        session.execute(
            delete(TraceStep).where(TraceStep.run_id == run_id, TraceStep.step_index == 2)
        )
    proof = read(sessions, run_proof, run_id)
    assert (proof.status, proof.failed_step, proof.stored_head_matches) == ("FAILED", 2, False)
    assert proof.step_count == 2 and proof.stored_step_count == 3


async def test_proof_unsupported_without_a_trace(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    acts = replaced(settings, sessions, trace_store_down)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(
            dev_env.client,
            task_queue,
            run_id,
            {"tenant_id": tenant, "steps": echo_steps(1),
             "options": {"observability_mode": "DEGRADED"}},
        )  # fmt: skip
        result = await handle.result()
    assert result.status == "succeeded"
    proof = read(sessions, run_proof, run_id)
    assert proof.status == "UNSUPPORTED" and proof.method is None
    assert "OBSERVABILITY_MODE=DEGRADED" in proof.reason
    assert "trace store unreachable" in proof.reason
    with pytest.raises(UnknownRunError):
        read(sessions, run_proof, "no-such-run")


async def test_governance_log_is_scoped_to_one_run(dev_env, settings, sessions, task_queue):
    tenant = new_tenant(sessions)
    tenants.update_tenant(sessions, tenant, budget="20")  # a tenant entry without a run id
    run_ids = [new_run_id() for _ in range(3)]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handles = [
            await start_run(
                dev_env.client, task_queue, r, {"tenant_id": tenant, "steps": echo_steps(2)}
            )
            for r in run_ids
        ]
        await asyncio.gather(*(h.result() for h in handles))
    target, other = run_ids[0], run_ids[1]
    with sessions.begin() as session:  # an entry that names the run only in before_state
        session.add(
            AuditLedgerEntry(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                event_type="RUN_ARCHIVED",
                entity_type="run",
                entity_id=target,
                actor_id="ops-1",
                actor_authority="TENANT_ADMIN",
                source="admin",
                before_state={"run_id": target, "archived": False},
                after_state={"archived": True},
                created_at=datetime.now(UTC),
            )
        )

    log = read(sessions, governance_log, target)
    assert log.run_id == target and log.total_events == len(log.events) > 3
    assert (log.metadata.tenant_id, log.metadata.run_id, log.metadata.immutable) == (
        tenant,
        target,
        True,
    )
    for event in log.events:
        states = (event.after_state or {}, event.before_state or {})
        carried = {state.get("run_id") for state in states}
        assert target in carried and other not in carried
        assert event.tenant_id == tenant and event.source
    types = [e.event_type for e in log.events]
    assert types[0] == "RUN_CREATED" and "RUN_AUTHORIZATION" in types
    assert types[-2:] == ["RUN_FINALIZED", "RUN_ARCHIVED"]
    assert [e.seq for e in log.events] == list(range(1, len(log.events) + 1))
    assert [e.created_at for e in log.events] == sorted(e.created_at for e in log.events)
    assert "TENANT_UPDATED" not in types
    other_ids = {e.id for e in read(sessions, governance_log, other).events}
    assert other_ids and not other_ids & {e.id for e in log.events}
