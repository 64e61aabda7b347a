"""Reconciliation facade: scan for overdue or unexpected rows, ask Temporal, record findings.

``scan`` pages through one pass of the stale scan (db.queries.stale); ``describe_runs``
asks Temporal about each run's workflow (async: it uses the worker's client);
``record`` writes the findings that are new (services.reconciliation).
"""

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from activities.execution import current_execution
from db.queries.stale import Page, overdue_page, unexpected_acks_page
from domain.ids import run_workflow_id
from domain.reconcile_messages import (
    Cursor,
    RecordRequest,
    RecordResult,
    RunState,
    ScanPage,
    ScanPass,
    ScanRequest,
)
from domain.reconciliation import WorkflowState
from services import reconciliation

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
        """Reconcile each run of a page; write only the findings not written before
        (idempotent by their derived ids: no idempotency-ledger row is kept)."""
        return reconciliation.record(self.sessions, current_execution(), req)
