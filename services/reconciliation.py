"""The reconciliation domain: the findings of the scheduled reconciliation.

``record`` reconciles the runs of one page of the stale scan with the pure reconciler and
writes the findings that are new, their outbox events and one audit-ledger entry per run,
in one transaction. A run whose workflow Temporal reports closed (or gone) while its row is
still open is failed there too, with the closure as its reason (services.runs.fail_stale).
Finding and event ids are derived, so a second reconciliation (a retry, or a concurrent
one) writes nothing and no idempotency-ledger row is kept. The one
writer of ``reconciliation_findings`` (expired findings go with ``delete_findings``).

``report_failure`` writes the ``reconciliation.failed`` event of a ReconcileWorkflow run
that failed, once per run (its id is derived from the workflow and Temporal run ids).
"""

from collections import defaultdict

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditExpectation, DomainAck, OutboxEvent, ReconciliationFinding
from domain.enums import AckStatus, Severity
from domain.ids import SYSTEM_TENANT, derive_id
from domain.reconcile_messages import (
    TOPIC_RECONCILIATION_FAILED,
    FailureReported,
    RecordRequest,
    RecordResult,
    RunReport,
)
from domain.reconciler import AckRow, ExpectationRow
from domain.reconciliation import CLOSED, Assessment, Finding, assess, event_plan
from observability import metrics
from services import runs
from services.events import emit, event_id
from services.ledger import UNSYNCED, Execution, audit_entry, utcnow


def record(
    sessions: sessionmaker[Session], execution: Execution, req: RecordRequest
) -> RecordResult:
    """Reconcile each run of a page; write only the findings not written before, tagged
    with the reconciliation (``execution``) that found them."""
    reconciliation_id = f"{execution.workflow_id}/{execution.run_id}"
    with sessions.begin() as session:
        run_ids = [r.run_id for r in req.runs]
        # The rows first, each locked (or found finalized meanwhile) before its contract
        # is read: a run that finalized after Temporal was asked is left as it is.
        failed = {
            r.run_id
            for r in req.runs
            if r.state in CLOSED and runs.fail_stale(session, r.run_id, r.cause) is not None
        }
        contracts = load_contracts(session, run_ids)
        known = set(
            session.scalars(
                select(ReconciliationFinding.id).where(ReconciliationFinding.run_id.in_(run_ids))
            )
        )
        reports = []
        for run in req.runs:
            tenant_id, expectations, acks = contracts.get(run.run_id, ("", [], []))
            found = assess(run.run_id, expectations, acks, run.state, req.as_of, run.cause)
            new = [f for f in found.findings if f.id not in known]
            known.update(f.id for f in new)
            _write_new(session, found, new, tenant_id, reconciliation_id)
            report = report_of(found, tenant_id, len(new), run_failed=run.run_id in failed)
            reports.append(report)
    return RecordResult(reports=reports)


def _write_new(
    session: Session, found: Assessment, new: list[Finding], tenant_id: str, reconciliation_id: str
) -> None:
    if not new:
        return
    kinds = [finding.kind for finding in new]
    metrics.record_reconciliation(
        missing=kinds.count("MISSING"), drift=kinds.count("DRIFT"), stale=kinds.count("STALE")
    )
    now = utcnow()
    for finding in new:
        session.add(
            ReconciliationFinding(
                id=finding.id,
                run_id=finding.run_id,
                tenant_id=tenant_id,
                kind=finding.kind,
                severity=finding.severity,
                domain=finding.domain,
                action=finding.action,
                cause=finding.cause,
                details=finding.details,
                reconciliation_id=reconciliation_id,
                found_at=now,
            )
        )
    for event in event_plan(found, new):
        emit(
            session,
            key=event.key,
            topic=event.topic,
            tenant_id=tenant_id,
            run_id=found.run_id,
            payload=event.payload,
        )
    audit_entry(
        session,
        key="reconciliation/" + derive_id(*sorted(f.id for f in new)),
        tenant_id=tenant_id,
        event_type="RECONCILIATION_FINDINGS",
        entity_type="run",
        entity_id=found.run_id,
        source="reconciliation",
        after_state={
            "run_id": found.run_id,
            "verdict": found.verdict,
            "workflow_state": found.state,
            "findings": [
                {"kind": f.kind, "domain": f.domain, "action": f.action, "cause": f.cause}
                for f in new
            ],
        },
    )


def load_contracts(
    session: Session, run_ids: list[str]
) -> dict[str, tuple[str, list[ExpectationRow], list[AckRow]]]:
    """Expectations and acks of many runs in two queries: run id → (tenant, rows, acks)."""
    tenants: dict[str, str] = {}
    expectations: dict[str, list[ExpectationRow]] = defaultdict(list)
    acks: dict[str, list[AckRow]] = defaultdict(list)
    for e in session.scalars(select(AuditExpectation).where(AuditExpectation.run_id.in_(run_ids))):
        tenants[e.run_id] = e.tenant_id
        expectations[e.run_id].append(
            ExpectationRow(e.domain, e.action, e.deadline, e.withdrawn_at is not None)
        )
    for a in session.scalars(select(DomainAck).where(DomainAck.run_id.in_(run_ids))):
        tenants.setdefault(a.run_id, a.tenant_id)
        acks[a.run_id].append(AckRow(a.domain, a.action, a.status == AckStatus.ROLLED_BACK))
    return {r: (tenants[r], expectations[r], acks[r]) for r in run_ids if r in tenants}


def report_of(
    found: Assessment, tenant_id: str, new_findings: int, *, run_failed: bool = False
) -> RunReport:
    rec = found.reconciliation
    stale = [f.cause for f in found.findings if f.kind == "STALE"]
    return RunReport(
        run_id=found.run_id,
        tenant_id=tenant_id,
        verdict=found.verdict,
        workflow_state=found.state,
        missing=rec.missing,
        drift=rec.drift,
        overdue=found.overdue,
        invalid=rec.invalid,
        rolled_back=rec.rolled_back,
        new_findings=new_findings,
        cause=stale[0] if stale else None,
        run_failed=run_failed,
    )


def delete_findings(session: Session, ids: list[str]) -> int:
    """Delete these findings (expired, of runs no pass reconciles again: services.retention)
    in the caller's transaction; returns how many went."""
    if not ids:
        return 0
    stmt = delete(ReconciliationFinding).where(ReconciliationFinding.id.in_(ids))
    return session.execute(stmt, execution_options=UNSYNCED).rowcount


def report_failure(
    sessions: sessionmaker[Session], execution: Execution, error: str
) -> FailureReported:
    """The ``reconciliation.failed`` outbox event of a failed ReconcileWorkflow run
    (``execution``), tenant SYSTEM_TENANT, with no governed run. Keyed by the workflow id
    and the Temporal run id: a retried attempt whose first one committed writes nothing."""
    key = f"reconciliation-failed/{execution.workflow_id}/{execution.run_id}"
    written_id = event_id(key, TOPIC_RECONCILIATION_FAILED)
    payload = {"workflow_id": execution.workflow_id, "run_id": execution.run_id,
               "error": error, "severity": Severity.HIGH}  # fmt: skip
    try:
        with sessions.begin() as session:
            emit(session, key=key, topic=TOPIC_RECONCILIATION_FAILED, tenant_id=SYSTEM_TENANT,
                 run_id=None, payload=payload)  # fmt: skip
    except IntegrityError:
        with sessions() as session:  # an earlier attempt wrote it (its completion was lost)
            if session.get(OutboxEvent, written_id) is None:
                raise
        return FailureReported(event_id=written_id, written=False)
    return FailureReported(event_id=written_id, written=True)
