"""Reconciliation facade: scan for overdue or unexpected rows, ask Temporal, record findings.

``scan`` pages through one pass of the stale scan (db.queries.stale); ``describe_runs``
asks Temporal about each run's workflow (async: it uses the worker's client);
``cross_check`` asks it about a page of open runs at once (one visibility query, a describe
only for the runs the query did not return); ``record`` writes the findings that are new
(services.reconciliation); ``purge_expired`` purges a bounded number of pages of expired
rows (services.retention, with the worker's RetentionPolicy); ``report_failure`` writes the
``reconciliation.failed`` event of the run, once.
"""

import asyncio
import re
from collections import defaultdict

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.execution import current_execution
from db.queries.stale import Page, open_runs_page, overdue_page, unexpected_acks_page
from domain.ids import run_workflow_id
from domain.reconcile_messages import (
    CrossCheckRequest,
    Cursor,
    FailureReport,
    FailureReported,
    OpenRun,
    PurgeResult,
    RecordRequest,
    RecordResult,
    RunState,
    ScanPage,
    ScanPass,
    ScanRequest,
)
from domain.reconciliation import CLOSED, WorkflowState
from domain.retention import RetentionPolicy
from services import reconciliation, retention

DESCRIBE_CONCURRENCY = 16
# Ids a visibility query may quote as they are (run ids are ID_PATTERN); any other is
# described on its own.
QUOTABLE = re.compile(r"^[A-Za-z0-9._:-]+$")


def workflow_ids_query(workflow_ids: list[str]) -> str:
    """One visibility query for many workflows: ``WorkflowId IN ("run-a", "run-b")``."""
    return "WorkflowId IN (" + ", ".join(f'"{w}"' for w in workflow_ids) + ")"


def state_of(execution: WorkflowExecution, run_id: str) -> RunState:
    """What a listed or described execution says about the run (no status: running)."""
    name = execution.status.name if execution.status is not None else WorkflowState.RUNNING
    return RunState(run_id=run_id, state=WorkflowState(name), closed_at=execution.close_time)


def owner(executions: list[WorkflowExecution], run: OpenRun) -> WorkflowExecution | None:
    """The execution the run goes on in: the latest of the chain that began with the one
    that opened it (its row's execution id; a continue-as-new keeps the chain's first run
    id), else that one itself; with no execution id, the latest one."""
    if run.execution_id is None:
        return _latest(executions)
    chain = [e for e in executions if _first_run_id(e) == run.execution_id]
    if chain:
        return _latest(chain)
    opened = next((e for e in executions if e.run_id == run.execution_id), None)
    if opened is not None and _continued(opened):  # a visibility without first run ids
        return _latest(executions)
    return opened


def _latest(executions: list[WorkflowExecution]) -> WorkflowExecution | None:
    return max(executions, key=lambda e: e.start_time, default=None)


def _first_run_id(execution: WorkflowExecution | WorkflowExecutionDescription) -> str:
    return execution.raw_info.first_run_id


async def describe(client: Client, run_id: str, execution_id: str | None = None) -> RunState:
    """The state of ``run-<run_id>``, or of the chain that began with ``execution_id``: an
    execution that continued as new, or that is gone past the namespace's retention, is
    followed to the latest execution when that one belongs to its chain; NOT_FOUND when
    there is none."""
    desc = await _described(client, run_id, execution_id)
    if execution_id is not None and (desc is None or _continued(desc)):
        latest = await _described(client, run_id)
        if latest is not None and _first_run_id(latest) == execution_id:
            desc = latest  # the run goes on (or ended) in a later execution of its chain
    if desc is None:
        return RunState(run_id=run_id, state=WorkflowState.NOT_FOUND)
    return state_of(desc, run_id)


async def _described(
    client: Client, run_id: str, execution_id: str | None = None
) -> WorkflowExecutionDescription | None:
    handle = client.get_workflow_handle(run_workflow_id(run_id), run_id=execution_id)
    try:
        return await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _continued(execution: WorkflowExecution | WorkflowExecutionDescription) -> bool:
    return execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW


class ReconcileActivities:
    """Reads and writes of the scheduled reconciliation; ``retention``: the worker's TTLs
    (runtime.settings.Settings.retention_policy; default: the defaults)."""

    def __init__(
        self, sessions: sessionmaker[Session], retention: RetentionPolicy | None = None
    ) -> None:
        self.sessions = sessions
        self.retention = retention or RetentionPolicy()

    @activity.defn(name="reconcile.scan")
    def scan(self, req: ScanRequest) -> ScanPage:
        """One keyset page of overdue expectations, of acks nobody expected or of open runs
        (read-only)."""
        after = (req.after.at, req.after.id) if req.after else None
        with self.sessions() as session:
            executions: dict[str, str] = {}
            if req.scan_pass == ScanPass.OVERDUE:
                page: Page = overdue_page(session, req.as_of, after, req.limit)
            elif req.scan_pass == ScanPass.OPEN_RUNS:
                page = open_runs_page(session, after, req.limit)
                executions = page.executions
            else:
                since = req.since or req.as_of
                page = unexpected_acks_page(session, since, req.as_of, after, req.limit)
        last = page.last
        return ScanPage(
            run_ids=page.run_ids,
            rows=len(page.rows),
            next=Cursor(at=last[0], id=last[1]) if last else None,
            executions=executions,
        )

    @activity.defn(name="reconcile.describe_runs")
    async def describe_runs(self, run_ids: list[str]) -> list[RunState]:
        """The state of each run's workflow ``run-<run_id>``; NOT_FOUND when there is none."""
        client = activity.client()
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(run_id: str) -> RunState:
            async with limit:
                return await describe(client, run_id)

        return list(await asyncio.gather(*(one(run_id) for run_id in run_ids)))

    @activity.defn(name="reconcile.cross_check")
    async def cross_check(self, req: CrossCheckRequest) -> list[RunState]:
        """The open runs of a page whose workflow Temporal reports closed, or does not know:
        one visibility query for the page, then a describe only of the runs whose owning
        execution it did not return. Runs still RUNNING are left out: only a closure that
        Temporal reported is acted on (the row was read before Temporal was asked)."""
        client = activity.client()
        by_workflow = {run_workflow_id(r.run_id): r for r in req.runs}
        quotable = [w for w in by_workflow if QUOTABLE.match(w)]
        listed: dict[str, list[WorkflowExecution]] = defaultdict(list)
        if quotable:
            async for execution in client.list_workflows(workflow_ids_query(quotable)):
                listed[execution.id].append(execution)
        states: list[RunState] = []
        unlisted: list[OpenRun] = []
        for workflow_id, run in by_workflow.items():
            found = owner(listed.get(workflow_id, []), run)
            if found is None:
                unlisted.append(run)
            else:
                states.append(state_of(found, run.run_id))
        limit = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(run: OpenRun) -> RunState:
            async with limit:
                return await describe(client, run.run_id, run.execution_id)

        states += await asyncio.gather(*(one(run) for run in unlisted))
        activity.logger.debug(
            "cross-checked %d open runs: %d listed, %d described", len(req.runs),
            len(req.runs) - len(unlisted), len(unlisted),
        )  # fmt: skip
        return [s for s in states if s.state in CLOSED]

    @activity.defn(name="reconcile.record")
    def record(self, req: RecordRequest) -> RecordResult:
        """Reconcile each run of a page; write only the findings not written before
        (idempotent by their derived ids: no idempotency-ledger row is kept)."""
        return reconciliation.record(self.sessions, current_execution(), req)

    @activity.defn(name="reconcile.purge_expired")
    def purge_expired(self) -> PurgeResult:
        """Purge expired rows, a page per transaction, at most ``max_pages`` pages (a retry
        finds what is left: each page committed on its own)."""
        return retention.purge_expired(self.sessions, self.retention)

    @activity.defn(name="reconcile.report_failure")
    def report_failure(self, req: FailureReport) -> FailureReported:
        """The ``reconciliation.failed`` event of this (failing) reconciliation, once."""
        return reconciliation.report_failure(self.sessions, current_execution(), req.error)
