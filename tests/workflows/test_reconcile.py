"""Destructive scenarios of the runtime audit contract, against the real dev server.

Each stale run is a real RunWorkflow whose worker "crashes" at a chosen point (an
activity that never returns), then is terminated; its deadlines are one second after
it starts (run_timeout_seconds=1, finalize grace 0), so ReconcileWorkflow finds it.
"""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLedgerEntry, DomainAck, OutboxEvent, ReconciliationFinding, Run
from domain.contract import (
    AUTHORIZE,
    COMPLETE_TRACE,
    CREATE_INCIDENT,
    EVALUATE_POLICY,
    FINALIZE_RUN,
    START_TRACE,
    record_step,
)
from domain.reconcile_messages import ReconcileInput
from domain.reconciler import ReconciliationStatus, reconcile
from services.audit import load_contract
from services.ledger import ack
from tests.helpers import count, new_tenant, rows, running_worker, start_run
from tests.reconcile_support import (
    activities_with,
    crash_run,
    failing,
    fast_run,
    hanging,
    reconcile_once,
    report_for,
    run_phase,
    wait_overdue,
    wait_until,
)
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.timeout(90)

ALL_ACTIONS = sorted(
    [AUTHORIZE, START_TRACE, record_step(0), EVALUATE_POLICY, COMPLETE_TRACE, FINALIZE_RUN]
)


@pytest.fixture
def fast(settings):
    return settings.model_copy(update={"finalize_grace_seconds": 0})


def findings(sessions: sessionmaker[Session], run_id: str) -> set[tuple[str, str, str]]:
    return {
        (f.kind, f.domain, f.action) for f in rows(sessions, ReconciliationFinding, run_id=run_id)
    }


def audit_topics(sessions: sessionmaker[Session], run_id: str) -> list[str]:
    events = rows(sessions, OutboxEvent, run_id=run_id)
    return sorted(e.topic for e in events if e.topic.startswith("audit."))


async def test_normal_completion_is_complete_and_clean(dev_env, fast, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id, fast_run(tenant))
        assert (await handle.result()).status == "succeeded"
        await wait_overdue(sessions, [run_id])
        summary = await reconcile_once(dev_env.client, task_queue)
    with sessions() as session:
        expectations, acks = load_contract(session, run_id)
    result = reconcile(expectations, acks, datetime.now(UTC))
    assert result.status == ReconciliationStatus.COMPLETE and result.clean
    assert len(acks) == len(ALL_ACTIONS)
    assert report_for(summary, run_id) is None
    assert findings(sessions, run_id) == set()


async def test_terminated_after_authorization_is_stale(dev_env, fast, sessions, task_queue, run_id):
    # The run row, its contract and its authorization commit together (runs.open), so the
    # earliest a run can die with a contract is right after it: one ack, the rest missing.
    await crash_run(
        dev_env, fast, sessions, task_queue, run_id, "traces.start",
        lambda: run_phase(sessions, run_id) == "AUTHORIZED",
    )  # fmt: skip
    assert {(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)} == {AUTHORIZE}
    await wait_overdue(sessions, [run_id])
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        summary = await reconcile_once(dev_env.client, task_queue)
    report = report_for(summary, run_id)
    assert (report.verdict, report.workflow_state) == ("STALE", "TERMINATED")
    unacked = [a for a in ALL_ACTIONS if a != AUTHORIZE]
    assert sorted(report.missing) == unacked
    assert findings(sessions, run_id) == {("STALE", *FINALIZE_RUN)} | {
        ("MISSING", d, a) for d, a in unacked
    }
    [stale] = rows(sessions, ReconciliationFinding, run_id=run_id, kind="STALE")
    assert stale.severity == "HIGH"
    assert stale.cause.startswith("workflow TERMINATED at ") and "without finalizing" in stale.cause
    assert audit_topics(sessions, run_id) == ["audit.reconciliation.stale"]


async def test_terminated_after_partial_acks_is_stale_with_the_right_actions_missing(
    dev_env, fast, sessions, task_queue, run_id
):
    await crash_run(
        dev_env, fast, sessions, task_queue, run_id, "steps.execute",
        lambda: run_phase(sessions, run_id) == "EXECUTING",
    )  # fmt: skip
    assert {(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)} == {
        AUTHORIZE,
        START_TRACE,
    }
    await wait_overdue(sessions, [run_id])
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        report = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
    assert report.verdict == "STALE"
    assert sorted(report.missing) == sorted(
        [record_step(0), EVALUATE_POLICY, COMPLETE_TRACE, FINALIZE_RUN]
    )
    assert report.drift == []


async def test_finalize_not_acked_is_stale_with_only_finalize_missing(
    dev_env, fast, sessions, task_queue, run_id
):
    def governed() -> bool:  # FINALIZING commits with runs.finalize, which hangs
        acked = {(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)}
        return run_phase(sessions, run_id) == "GOVERNANCE_CHECK" and COMPLETE_TRACE in acked

    await crash_run(dev_env, fast, sessions, task_queue, run_id, "runs.finalize", governed)
    await wait_overdue(sessions, [run_id])
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        report = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
    assert (report.verdict, report.missing) == ("STALE", [FINALIZE_RUN])
    assert findings(sessions, run_id) == {("STALE", *FINALIZE_RUN), ("MISSING", *FINALIZE_RUN)}


async def test_batch_of_five_runs_finds_exactly_the_three_stale(
    dev_env, fast, sessions, task_queue
):
    tenant = new_tenant(sessions)
    stale_ids = [f"batch-stale-{i}-{task_queue}" for i in range(3)]
    fine_ids = [f"batch-fine-{i}-{task_queue}" for i in range(2)]
    crash_queue = f"{task_queue}-crash"
    crashing = activities_with(fast, sessions, hanging("steps.execute"))
    async with (
        running_worker(dev_env.client, fast, sessions, task_queue),
        running_worker(dev_env.client, fast, sessions, crash_queue, crashing),
    ):
        fine = [await start_run(dev_env.client, task_queue, r, fast_run(tenant)) for r in fine_ids]
        stale = [
            await start_run(dev_env.client, crash_queue, r, fast_run(tenant)) for r in stale_ids
        ]
        for handle in fine:
            assert (await handle.result()).status == "succeeded"
        for run_id, handle in zip(stale_ids, stale, strict=True):
            await wait_until(lambda r=run_id: run_phase(sessions, r) == "EXECUTING")
            await handle.terminate("worker crash (test)")
        await wait_overdue(sessions, stale_ids + fine_ids)
        summary = await reconcile_once(dev_env.client, task_queue)
    found = {r.run_id for r in summary.reports if r.verdict == "STALE"}
    assert found & set(stale_ids + fine_ids) == set(stale_ids)
    for run_id in fine_ids:
        assert findings(sessions, run_id) == set()


async def test_rollback_acks_keep_the_audit_trail(dev_env, fast, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    activities = activities_with(fast, sessions, failing("traces.complete"))
    async with running_worker(dev_env.client, fast, sessions, task_queue, activities):
        handle = await start_run(dev_env.client, task_queue, run_id, fast_run(tenant))
        result = await handle.result()
        assert result.rolled_back and result.status == "failed"
        await wait_overdue(sessions, [run_id])
        summary = await reconcile_once(dev_env.client, task_queue)
    acks = rows(sessions, DomainAck, run_id=run_id)
    undone = [a for a in acks if a.rolled_back]
    assert [(a.domain, a.action, a.status) for a in undone] == [(*EVALUATE_POLICY, "ROLLED_BACK")]
    assert undone[0].rollback_reason and "governance rolled back" in undone[0].rollback_reason
    # The original ack is still there: a rollback is a new row, never a delete.
    assert {(a.domain, a.action, a.status) for a in acks} >= {(*EVALUATE_POLICY, "ACKED")}
    ledger = [
        e for e in rows(sessions, AuditLedgerEntry, tenant_id=tenant) if e.event_type == "ROLLBACK"
    ]
    assert [e.after_state["run_id"] for e in ledger] == [run_id]
    with sessions() as session:
        rec = reconcile(*load_contract(session, run_id), datetime.now(UTC))
    assert rec.status == ReconciliationStatus.COMPLETE and rec.rolled_back == [EVALUATE_POLICY]
    assert report_for(summary, run_id) is None and findings(sessions, run_id) == set()


async def test_drift_an_ack_nobody_expected(dev_env, fast, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id, fast_run(tenant))
        assert (await handle.result()).status == "succeeded"
        with sessions.begin() as session:  # a rogue incident write, undeclared by the run
            ack(
                session,
                run_id=run_id,
                tenant_id=tenant,
                domain=CREATE_INCIDENT[0],
                action=CREATE_INCIDENT[1],
                result_id="rogue",
            )
        summary = await reconcile_once(dev_env.client, task_queue)
    report = report_for(summary, run_id)
    assert (report.verdict, report.drift, report.missing) == ("INCOMPLETE", [CREATE_INCIDENT], [])
    assert findings(sessions, run_id) == {("DRIFT", *CREATE_INCIDENT)}
    [event] = [e for e in rows(sessions, OutboxEvent, run_id=run_id) if e.topic.startswith("audit")]
    assert event.topic == "audit.reconciliation.drift"
    assert event.payload["domain"] == "incidents" and event.payload["severity"] == "MEDIUM"


async def test_running_late_then_terminated(dev_env, fast, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    activities = activities_with(fast, sessions, hanging("steps.execute"))
    async with running_worker(dev_env.client, fast, sessions, task_queue, activities):
        handle = await start_run(dev_env.client, task_queue, run_id, fast_run(tenant))
        await wait_until(lambda: run_phase(sessions, run_id) == "EXECUTING")
        await wait_overdue(sessions, [run_id])
        late = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
        assert (late.verdict, late.workflow_state) == ("LATE", "RUNNING")
        assert findings(sessions, run_id) == {("LATE", *FINALIZE_RUN)}
        assert audit_topics(sessions, run_id) == ["audit.expectation.timeout"]
        await handle.terminate("worker crash (test)")
        stale = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
    assert (stale.verdict, stale.workflow_state) == ("STALE", "TERMINATED")
    assert ("STALE", *FINALIZE_RUN) in findings(sessions, run_id)
    assert audit_topics(sessions, run_id) == [
        "audit.expectation.timeout",
        "audit.reconciliation.stale",
    ]


async def test_reconciling_twice_changes_nothing(dev_env, fast, sessions, task_queue, run_id):
    await crash_run(
        dev_env, fast, sessions, task_queue, run_id, "steps.execute",
        lambda: run_phase(sessions, run_id) == "EXECUTING",
    )  # fmt: skip
    await wait_overdue(sessions, [run_id])

    def snapshot() -> tuple:
        return (
            sorted(f.id for f in rows(sessions, ReconciliationFinding, run_id=run_id)),
            sorted(e.id for e in rows(sessions, OutboxEvent, run_id=run_id)),
            count(sessions, AuditLedgerEntry, entity_id=run_id),
            rows(sessions, Run, id=run_id)[0].phase,
        )

    async with running_worker(dev_env.client, fast, sessions, task_queue):
        first = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
        after_first = snapshot()
        second = report_for(await reconcile_once(dev_env.client, task_queue), run_id)
    assert first.new_findings > 0 and second.new_findings == 0
    assert first.run_failed and not second.run_failed  # the first failed its open row
    assert first.model_copy(update={"new_findings": 0, "run_failed": False}) == second
    assert snapshot() == after_first


async def test_a_long_reconciliation_continues_as_new_with_bounded_state(
    dev_env, fast, sessions, task_queue
):
    """Patch bounded-reconcile-state: past its time budget (0 here) a reconciliation
    continues as new at the next page, carrying at most ``max_seen_carried`` runs; the chain
    still finds every stale run once."""
    stale_ids = [f"can-stale-{i}-{task_queue}" for i in range(2)]
    for run_id in stale_ids:
        await crash_run(dev_env, fast, sessions, task_queue, run_id, "steps.execute",
                        lambda r=run_id: run_phase(sessions, r) == "EXECUTING")  # fmt: skip
    await wait_overdue(sessions, stale_ids)
    workflow_id = f"reconcile-can-{task_queue}"
    inp = ReconcileInput(page_size=3, run_budget_seconds=0, max_seen_carried=1)
    async with running_worker(dev_env.client, fast, sessions, task_queue):
        handle = await dev_env.client.start_workflow(
            ReconcileWorkflow.run, inp, id=workflow_id, task_queue=task_queue
        )
        await handle.result()  # follows the chain to its last run
        first = dev_env.client.get_workflow_handle(
            workflow_id, run_id=handle.first_execution_run_id
        )
        events = (await first.fetch_history()).events
    continued = events[-1].workflow_execution_continued_as_new_event_attributes
    assert continued.new_execution_run_id, "the first run did not continue as new"
    carried = json.loads(continued.input.payloads[0].data)
    assert len(carried["seen"]) <= 1 and carried["cursor"] is not None
    for run_id in stale_ids:
        assert ("STALE", "orchestrator", "finalize_run") in findings(sessions, run_id)
