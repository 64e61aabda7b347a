"""Payloads of ReconcileWorkflow and its activities (pydantic v2, Temporal boundary)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.reconciliation import WorkflowState, closure_cause

# Written (tenant domain.ids.SYSTEM_TENANT) when a ReconcileWorkflow run fails; the event
# handlers turn it into a RECONCILIATION_FAILED alert.
TOPIC_RECONCILIATION_FAILED = "reconciliation.failed"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScanPass(StrEnum):
    OVERDUE = "OVERDUE"  # open expectations past their deadline (partial index)
    UNEXPECTED_ACKS = "UNEXPECTED_ACKS"  # acks without any expectation, since the watermark
    OPEN_RUNS = "OPEN_RUNS"  # runs whose row is still open (partial index), checked with Temporal


class Cursor(Strict):
    """Keyset position: the last (timestamp, id) a page returned."""

    at: datetime
    id: str


class ReconcileTotals(Strict):
    runs_checked: int = 0
    complete: int = 0
    incomplete: int = 0
    stale: int = 0
    late: int = 0
    findings_new: int = 0
    open_runs_checked: int = 0  # runs with an open row whose workflow was asked about
    runs_failed: int = 0  # of them, closed without finalizing: moved to FAILED


class ReconcileInput(Strict):
    """Input of ``ReconcileWorkflow``; every field has a default (the schedule sets some).

    The fields after ``ack_lookback_seconds`` carry progress across continue-as-new.
    """

    page_size: int = Field(default=500, ge=1, le=5000)
    ack_lookback_seconds: int = Field(default=3600, ge=0)
    ack_overlap_seconds: int = Field(default=300, ge=0)
    # Patch bounded-reconcile-state: a run continues as new after this long (so that the
    # schedule's per-run timeout bounds one run), carrying at most this many of the runs
    # it already reconciled (one reconciled again is harmless: its findings are idempotent).
    run_budget_seconds: int = Field(default=600, ge=0, le=86400)
    max_seen_carried: int = Field(default=1000, ge=0, le=100_000)
    as_of: datetime | None = None
    ack_since: datetime | None = None
    scan_pass: ScanPass = ScanPass.OVERDUE
    cursor: Cursor | None = None
    pages_done: int = 0
    totals: ReconcileTotals = Field(default_factory=ReconcileTotals)
    reports: list["RunReport"] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list, description="runs already reconciled")


class ScanRequest(Strict):
    scan_pass: ScanPass
    as_of: datetime
    since: datetime | None = None
    after: Cursor | None = None
    limit: int = Field(ge=1)


class ScanPage(Strict):
    """The distinct run ids of one page, and where the next page starts (None: done)."""

    run_ids: list[str]
    rows: int
    next: Cursor | None
    # OPEN_RUNS: the Temporal run id that opened each run (its row's execution_id).
    executions: dict[str, str] = Field(default_factory=dict)


class RunState(Strict):
    run_id: str
    state: WorkflowState
    closed_at: datetime | None = None

    @property
    def cause(self) -> str:
        return closure_cause(self.state, self.closed_at)


class OpenRun(Strict):
    """A run whose row is open, and the execution that owns it (None: not known)."""

    run_id: str
    execution_id: str | None = None


class CrossCheckRequest(Strict):
    runs: list[OpenRun]


class RecordRequest(Strict):
    as_of: datetime
    runs: list[RunState]


class RunReport(Strict):
    """What the reconciliation found for one run."""

    run_id: str
    tenant_id: str
    verdict: str
    workflow_state: WorkflowState
    missing: list[tuple[str, str]] = Field(default_factory=list)
    drift: list[tuple[str, str]] = Field(default_factory=list)
    overdue: list[tuple[str, str]] = Field(default_factory=list)
    invalid: list[tuple[str, str]] = Field(default_factory=list)
    rolled_back: list[tuple[str, str]] = Field(default_factory=list)
    new_findings: int = 0
    cause: str | None = Field(default=None, description="why a STALE run is stale")
    run_failed: bool = Field(default=False, description="this reconciliation failed its row")


class RecordResult(Strict):
    reports: list[RunReport]


class PurgeCounts(Strict):
    """Expired rows purged, per table (services.retention)."""

    outbox_events: int = 0
    event_deliveries: int = 0  # of the purged events
    reconciliation_findings: int = 0
    suppressed_alerts: int = 0
    idempotency_ledger: int = 0  # of finalized runs
    payload_blobs: int = 0  # claim-check blobs unused for their TTL

    def plus(self, other: "PurgeCounts") -> "PurgeCounts":
        return PurgeCounts(**{k: v + getattr(other, k) for k, v in self})

    @property
    def total(self) -> int:
        return sum(v for _, v in self)


class PurgeResult(Strict):
    """One call of ``reconcile.purge_expired``: what it purged, in how many pages (delete
    transactions that removed rows), and whether nothing expired is left."""

    purged: PurgeCounts = Field(default_factory=PurgeCounts)
    pages: int = 0
    done: bool = True


class FailureReport(Strict):
    """Why a ReconcileWorkflow run failed (``reconcile.report_failure``)."""

    error: str = Field(max_length=4000)


class FailureReported(Strict):
    event_id: str
    written: bool = Field(description="False: an earlier attempt had written it")


class ReconcileSummary(Strict):
    """What ``ReconcileWorkflow`` returns (and the next scheduled run reads back)."""

    as_of: datetime
    ack_watermark: datetime
    totals: ReconcileTotals
    reports: list[RunReport] = Field(description="runs with findings (first 200)")
    purged_log_entries: int = 0
    purged: PurgeCounts = Field(default_factory=PurgeCounts, description="expired rows")
    purge_pages: int = 0


ReconcileInput.model_rebuild()
