"""ReconcileWorkflow: find stale runs and actions nobody expected; record what is new.

Started by the Temporal Schedule ``reconcile-stale-runs`` (runtime.schedules) or once by
``starter.py reconcile``. Three passes, each paged by keyset through activities:

1. OVERDUE: open expectations past their deadline (partial index) → their runs.
2. UNEXPECTED_ACKS: acks since the previous run's watermark that match no expectation.
3. OPEN_RUNS (patch ``cross-check-open-runs``): runs whose row is still open (partial
   index), cross-checked with Temporal a page at a time; those whose workflow closed (or
   is gone) without finalizing are reconciled — STALE at once, not when finalize_run falls
   due — and their rows fail with the closure as the reason.

For each page: ask Temporal about every run's workflow, then reconcile and record (only
new findings are written, with their outbox events). Safe to run twice. At the end it
purges the candidate orchestration log (activity ``candidates.purge_orchestration_log``)
and (patch ``purge-expired-rows``) the rows whose TTL passed, a bounded number of pages per
``reconcile.purge_expired`` call, calling again until none is left; the counts per table
are in the summary.

A run that fails (an activity out of retries, a non-retryable error; not a cancellation)
first writes a ``reconciliation.failed`` event (patch ``report-reconciliation-failure``,
activity ``reconcile.report_failure``), then fails with its error as before.
"""

from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import ReconcileActivities
    from domain.reconcile_messages import (
        CrossCheckRequest,
        FailureReport,
        OpenRun,
        PurgeCounts,
        ReconcileInput,
        ReconcileSummary,
        RecordRequest,
        RunReport,
        RunState,
        ScanPage,
        ScanPass,
        ScanRequest,
    )
    from workflows.errors import describe_validation_error, one_object
    from workflows.patches import (
        BOUNDED_RECONCILE_STATE,
        PURGE_EXPIRED_ROWS,
        REPORT_RECONCILE_FAILURE,
    )

MAX_REPORTS = 200
# Purge calls per reconciliation (each at most RetentionPolicy.max_pages pages): a backlog
# larger than that is left to the next reconciliation.
MAX_PURGE_CALLS = 50

# The third pass (OPEN_RUNS): a reconciliation started before it replays without it.
CROSS_CHECK_OPEN_RUNS = "cross-check-open-runs"

RECONCILE_ACTIVITY = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
    ),
}

# Writing the failure event: retried for minutes (the database may be what failed), then
# the workflow fails with its own error all the same.
REPORT_FAILURE_ACTIVITY = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=0,  # until schedule_to_close_timeout
    ),
}


@workflow.defn(name="ReconcileWorkflow")
class ReconcileWorkflow:
    """One reconciliation of every overdue run and every unexpected ack since last time."""

    @staticmethod
    def _parse(args: tuple[Any, ...]) -> ReconcileInput:
        """No payload (every field defaulted) or one ReconcileInput object; anything else
        fails the workflow at once (never its task, which would retry forever)."""
        if not args:
            return ReconcileInput()
        raw, problem = one_object(args)
        try:
            if raw is None:
                raise ValueError(problem)
            return ReconcileInput.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            reason = describe_validation_error(exc) if isinstance(exc, ValidationError) else exc
            raise ApplicationError(
                f"invalid ReconcileWorkflow input: {reason}",
                type="InvalidReconcileInput",
                non_retryable=True,
            ) from None

    @workflow.run
    async def run(self, *args: Any) -> ReconcileSummary:
        try:
            return await self._reconcile(self._parse(args))
        except FailureError as exc:
            if is_cancelled_exception(exc) or not workflow.patched(REPORT_RECONCILE_FAILURE):
                raise
            await self._report_failure(exc)
            raise

    async def _reconcile(self, inp: ReconcileInput) -> ReconcileSummary:
        as_of = inp.as_of or workflow.now()
        ack_since = inp.ack_since or self._ack_since(inp, as_of)
        state = inp.model_copy(update={"as_of": as_of, "ack_since": ack_since})
        # A run with many overdue rows spans pages: reconcile it once (insertion-ordered).
        seen = dict.fromkeys(state.seen)
        bounded = workflow.patched(BOUNDED_RECONCILE_STATE)
        passes = [ScanPass.OVERDUE, ScanPass.UNEXPECTED_ACKS]
        if workflow.patched(CROSS_CHECK_OPEN_RUNS):
            passes.append(ScanPass.OPEN_RUNS)
        for scan_pass in passes[passes.index(state.scan_pass) :]:
            cursor = state.cursor if scan_pass == state.scan_pass else None
            while True:
                page = await workflow.execute_activity_method(
                    ReconcileActivities.scan,
                    ScanRequest(
                        scan_pass=scan_pass,
                        as_of=as_of,
                        since=ack_since,
                        after=cursor,
                        limit=state.page_size,
                    ),
                    **RECONCILE_ACTIVITY,
                )
                fresh = [r for r in page.run_ids if r not in seen]
                if scan_pass == ScanPass.OPEN_RUNS:
                    await self._cross_check(state, page, fresh, seen, as_of)
                elif fresh:
                    seen.update(dict.fromkeys(fresh))
                    self._add(state, await self._describe_and_record(fresh, as_of))
                state.pages_done += 1
                if page.next is None:
                    break
                cursor = page.next
                # Patch bounded-reconcile-state: also after the run's time budget, carrying
                # only the most recent of the runs reconciled (ReconcileInput).
                budget = timedelta(seconds=state.run_budget_seconds)
                suggested = workflow.info().is_continue_as_new_suggested()
                if bounded and (suggested or workflow.now() - workflow.info().start_time >= budget):
                    carried = (
                        list(seen)[-state.max_seen_carried :] if state.max_seen_carried else []
                    )
                    update = {"scan_pass": scan_pass, "cursor": cursor, "seen": carried}
                    workflow.continue_as_new(state.model_copy(update=update))
                if not bounded and workflow.info().is_continue_as_new_suggested():
                    update = {"scan_pass": scan_pass, "cursor": cursor, "seen": sorted(seen)}
                    workflow.continue_as_new(state.model_copy(update=update))
        purged = await workflow.execute_activity(
            "candidates.purge_orchestration_log", result_type=int, **RECONCILE_ACTIVITY
        )
        expired, purge_pages = PurgeCounts(), 0
        if workflow.patched(PURGE_EXPIRED_ROWS):
            expired, purge_pages = await self._purge_expired()
        return ReconcileSummary(
            as_of=as_of,
            ack_watermark=as_of,
            totals=state.totals,
            reports=state.reports,
            purged_log_entries=purged,
            purged=expired,
            purge_pages=purge_pages,
        )

    @staticmethod
    async def _purge_expired() -> tuple[PurgeCounts, int]:
        """Expired rows, a bounded batch of pages per call, until none is left."""
        counts, pages = PurgeCounts(), 0
        for _ in range(MAX_PURGE_CALLS):
            result = await workflow.execute_activity_method(
                ReconcileActivities.purge_expired, **RECONCILE_ACTIVITY
            )
            counts, pages = counts.plus(result.purged), pages + result.pages
            if result.done:
                break
        return counts, pages

    @staticmethod
    async def _report_failure(exc: FailureError) -> None:
        """The ``reconciliation.failed`` event; if even that cannot be written, the run
        still fails with its own error (logged here)."""
        report = FailureReport(error=failure_text(exc)[:4000])
        try:
            await workflow.execute_activity_method(
                ReconcileActivities.report_failure, report, **REPORT_FAILURE_ACTIVITY
            )
        except FailureError as failed:
            workflow.logger.error(
                "reconciliation failed (%s); its reconciliation.failed event could not be "
                "written: %s", report.error, failure_text(failed),
            )  # fmt: skip

    @staticmethod
    def _ack_since(inp: ReconcileInput, as_of: datetime) -> datetime:
        """From the previous scheduled run's watermark (minus an overlap), else a lookback."""
        if workflow.has_last_completion_result():
            previous = workflow.get_last_completion_result(ReconcileSummary)
            if previous is not None:
                return previous.ack_watermark - timedelta(seconds=inp.ack_overlap_seconds)
        return as_of - timedelta(seconds=inp.ack_lookback_seconds)

    async def _describe_and_record(self, run_ids: list[str], as_of: datetime) -> list[RunReport]:
        states = await workflow.execute_activity_method(
            ReconcileActivities.describe_runs, run_ids, **RECONCILE_ACTIVITY
        )
        return await self._record(states, as_of)

    async def _cross_check(
        self,
        state: ReconcileInput,
        page: ScanPage,
        fresh: list[str],
        seen: dict[str, None],
        as_of: datetime,
    ) -> None:
        """Open runs of one page (not reconciled earlier in this pass): those whose workflow
        Temporal reports closed or gone are reconciled; running ones are left alone."""
        state.totals.open_runs_checked += len(fresh)
        if not fresh:
            return
        runs = [OpenRun(run_id=r, execution_id=page.executions.get(r)) for r in fresh]
        closed = await workflow.execute_activity_method(
            ReconcileActivities.cross_check, CrossCheckRequest(runs=runs), **RECONCILE_ACTIVITY
        )
        if closed:
            seen.update(dict.fromkeys(s.run_id for s in closed))
            self._add(state, await self._record(closed, as_of))

    async def _record(self, states: list[RunState], as_of: datetime) -> list[RunReport]:
        result = await workflow.execute_activity_method(
            ReconcileActivities.record,
            RecordRequest(as_of=as_of, runs=states),
            **RECONCILE_ACTIVITY,
        )
        return result.reports

    @staticmethod
    def _add(state: ReconcileInput, reports: list[RunReport]) -> None:
        totals = state.totals
        for report in reports:
            totals.runs_checked += 1
            totals.findings_new += report.new_findings
            totals.runs_failed += report.run_failed
            verdict = report.verdict.lower()
            setattr(totals, verdict, getattr(totals, verdict) + 1)
            if report.verdict != "COMPLETE" and len(state.reports) < MAX_REPORTS:
                state.reports.append(report)


def failure_text(exc: BaseException) -> str:
    """A failure and its causes in one line: "activity reconcile.scan failed: Injected:
    reconcile.scan failed (injected)"."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        if isinstance(current, ActivityError):
            parts.append(f"activity {current.activity_type} failed")
        elif isinstance(current, ApplicationError):
            parts.append(f"{current.type or 'ApplicationError'}: {current.message}")
        elif isinstance(current, TemporalTimeoutError):
            parts.append(f"timed out ({current.type.name if current.type else 'timeout'})")
        else:
            parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__
    return ": ".join(parts)
