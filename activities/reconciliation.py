"""Reconciliation facade: scan for overdue or unexpected rows, ask Temporal, record findings.

``scan`` pages through one pass of the stale scan (db.queries.stale); ``describe_runs``
asks Temporal about each run's workflow (async: it uses the worker's client);
``record`` reconciles the runs of a page with the pure reconciler and writes the
findings that are new, their outbox events and one audit-ledger entry per run, in one
transaction. Finding and event ids are derived, so a second reconciliation writes nothing.
"""

import asyncio
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from activities.events import emit
from activities.ledger import audit_entry, utcnow
from db.models import AuditExpectation, DomainAck, ReconciliationFinding
from db.queries.stale import Page, overdue_page, unexpected_acks_page
from domain.enums import AckStatus
from domain.ids import derive_id, run_workflow_id
from domain.reconcile_messages import (
    Cursor,
    RecordRequest,
    RecordResult,
    RunReport,
    RunState,
    ScanPage,
    ScanPass,
    ScanRequest,
)
from domain.reconciler import AckRow, ExpectationRow
from domain.reconciliation import Assessment, Finding, WorkflowState, assess, event_plan
from observability import metrics

DESCRIBE_CONCURRENCY = 16


class ReconcileActivities:
    """Reads and writes of the scheduled reconciliation."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="reconcile.scan")
    def scan(self, req: ScanRequest) -> ScanPage:
        """One keyset page of overdue expectations or of acks nobody expected (read-only)."""
        after = (req.after.at, req.after.id) if req.after else None
        with self.sessions() as session:
            if req.scan_pass == ScanPass.OVERDUE:
                page: Page = overdue_page(session, req.as_of, after, req.limit)
            else:
                since = req.since or req.as_of
                page = unexpected_acks_page(session, since, req.as_of, after, req.limit)
        last = page.last
        return ScanPage(
            run_ids=page.run_ids,
            rows=len(page.rows),
            next=Cursor(at=last[0], id=last[1]) if last else None,
        )

    @activity.defn(name="reconcile.describe_runs")
    async def describe_runs(self, run_ids: list[str]) -> list[RunState]:
        """The state of each run's workflow ``run-<run_id>``; NOT_FOUND when there is none."""
        client = activity.client()
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(run_id: str) -> RunState:
            async with limit:
                try:
                    desc = await client.get_workflow_handle(run_workflow_id(run_id)).describe()
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        return RunState(run_id=run_id, state=WorkflowState.NOT_FOUND)
                    raise
            name = desc.status.name if desc.status is not None else WorkflowState.RUNNING
            return RunState(run_id=run_id, state=WorkflowState(name))

        return list(await asyncio.gather(*(one(run_id) for run_id in run_ids)))

    @activity.defn(name="reconcile.record")
    def record(self, req: RecordRequest) -> RecordResult:
        """Reconcile each run of a page; write only the findings not written before.

        Idempotent by its derived ids (a retry, or a concurrent reconciliation, finds the
        findings already there and writes nothing), so no idempotency-ledger row is kept.
        """
        info = activity.info()
        reconciliation_id = f"{info.workflow_id}/{info.workflow_run_id}"
        with self.sessions.begin() as session:
            run_ids = [r.run_id for r in req.runs]
            contracts = load_contracts(session, run_ids)
            known = set(
                session.scalars(
                    select(ReconciliationFinding.id).where(
                        ReconciliationFinding.run_id.in_(run_ids)
                    )
                )
            )
            reports = []
            for run in req.runs:
                tenant_id, expectations, acks = contracts.get(run.run_id, ("", [], []))
                found = assess(run.run_id, expectations, acks, run.state, req.as_of)
                new = [f for f in found.findings if f.id not in known]
                known.update(f.id for f in new)
                self._write_new(session, found, new, tenant_id, reconciliation_id)
                reports.append(report_of(found, tenant_id, len(new)))
        return RecordResult(reports=reports)

    @staticmethod
    def _write_new(
        session: Session,
        found: Assessment,
        new: list[Finding],
        tenant_id: str,
        reconciliation_id: str,
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


def report_of(found: Assessment, tenant_id: str, new_findings: int) -> RunReport:
    rec = found.reconciliation
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
    )
