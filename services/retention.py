"""Retention: purge the bookkeeping rows whose TTL passed, a page per transaction.

Called at the end of each reconciliation (activity ``reconcile.purge_expired``). Which rows
may go (domain.retention has the cutoffs; a TTL of 0 keeps a table forever):

- outbox events older than their TTL whose every delivery row is delivered and that no
  reactor group can read again (behind each group's cursor by more than its sweep
  window), with their delivery rows;
- reconciliation findings older than their TTL whose run no pass reconciles again (it
  has no open expectation: a finding is also what keeps a reconciliation from writing it,
  and its event, a second time);
- suppressed alerts older than their TTL;
- idempotency-ledger rows of runs that can no longer be retried: the run is COMPLETED or
  FAILED, and it was finalized (or failed as stale) longer ago than the TTL;
- claim-check blobs (runtime.claim_check) unused for their TTL — at least the longest run
  plus the namespace's history retention plus a day (runtime.settings, runtime.stack) — and
  never one used since a day before the oldest open run started: an open run's history may
  still reference it, however long the run's own timeout.

The audit ledger, traces, acks, incidents and expectations are never purged (README
"Retention" tells how to archive them). This module chooses the rows (reads only); each
table's own writer deletes them (services.events, services.deliveries,
services.reconciliation, services.alerts, services.ledger, services.payload_blobs), in the
page's transaction.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    AuditExpectation,
    EventCursor,
    EventDelivery,
    IdempotencyRecord,
    OutboxEvent,
    PayloadBlob,
    ReconciliationFinding,
    Run,
    SuppressedAlert,
)
from db.models.runs import OPEN_RUN
from domain.enums import Phase
from domain.reconcile_messages import PurgeCounts, PurgeResult
from domain.retention import BLOB_REFRESH_SECONDS, RetentionPolicy, cutoff, outbox_cutoff
from observability import metrics
from services import alerts, deliveries, events, ledger, payload_blobs, reconciliation
from services.ledger import utcnow

Page = Callable[[Session, RetentionPolicy, datetime], dict[str, int]]
"""Deletes one page of one table in the caller's transaction: {table: rows deleted}, the
page's own table first."""


def purge_expired(
    sessions: sessionmaker[Session], policy: RetentionPolicy, now: datetime | None = None
) -> PurgeResult:
    """Purge expired rows table by table, ``policy.page_size`` rows per transaction, at
    most ``policy.max_pages`` transactions; ``done`` is False when rows may be left."""
    now = now or utcnow()
    counts = PurgeCounts()
    pages = 0
    for page in (_outbox_page, _findings_page, _suppressed_page, _ledger_page, _blobs_page):
        while True:
            if pages >= policy.max_pages:
                return PurgeResult(purged=counts, pages=pages, done=False)
            with sessions.begin() as session:
                deleted = page(session, policy, now)
            main = next(iter(deleted.values()), 0)
            if main == 0:
                break
            pages += 1
            counts = counts.plus(PurgeCounts(**deleted))
            metrics.record_purged(deleted)
            if main < policy.page_size:
                break
    return PurgeResult(purged=counts, pages=pages, done=True)


def _outbox_page(session: Session, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    e, d = OutboxEvent, EventDelivery
    cursors = session.scalars(select(EventCursor.position_at)).all()
    before = outbox_cutoff(now, policy.outbox_events_seconds, policy.sweep_overlap_seconds,
                           cursors)  # fmt: skip
    if before is None:
        return {}
    undelivered = exists().where(d.event_id == e.id, d.delivered_at.is_(None))
    ids = list(
        session.scalars(
            select(e.id)
            .where(e.created_at < before, ~undelivered)
            .order_by(e.created_at, e.id)
            .limit(policy.page_size)
        )
    )
    removed = deliveries.delete_deliveries_of(session, ids)
    return {"outbox_events": events.delete_events(session, ids), "event_deliveries": removed}


def _findings_page(session: Session, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    f, x = ReconciliationFinding, AuditExpectation
    before = cutoff(now, policy.findings_seconds)
    if before is None:
        return {}
    still_owed = exists().where(x.run_id == f.run_id, x.acked_at.is_(None),
                                x.withdrawn_at.is_(None))  # fmt: skip
    ids = list(
        session.scalars(
            select(f.id)
            .where(f.found_at < before, ~still_owed)
            .order_by(f.found_at, f.id)
            .limit(policy.page_size)
        )
    )
    return {"reconciliation_findings": reconciliation.delete_findings(session, ids)}


def _suppressed_page(session: Session, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    s = SuppressedAlert
    before = cutoff(now, policy.suppressed_alerts_seconds)
    if before is None:
        return {}
    ids = list(
        session.scalars(
            select(s.id)
            .where(s.created_at < before)
            .order_by(s.created_at, s.id)
            .limit(policy.page_size)
        )
    )
    return {"suppressed_alerts": alerts.delete_suppressed(session, ids)}


def _ledger_page(session: Session, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    r, run = IdempotencyRecord, Run
    before = cutoff(now, policy.idempotency_ledger_seconds)
    if before is None:
        return {}
    # A run failed as stale has no finalized_at: the transition that failed it set updated_at.
    closed_at = func.coalesce(run.finalized_at, run.updated_at)
    keys = [
        tuple(row)
        for row in session.execute(
            select(r.workflow_id, r.execution_id, r.step_key)
            .join(run, run.workflow_id == r.workflow_id)
            .where(
                r.created_at < before,  # (written before the run closed: implied, indexed)
                run.phase.in_([Phase.COMPLETED, Phase.FAILED]),
                closed_at < before,
            )
            .order_by(r.created_at, r.workflow_id, r.execution_id, r.step_key)
            .limit(policy.page_size)
        )
    ]
    return {"idempotency_ledger": ledger.delete_records(session, keys)}


def _blobs_page(session: Session, policy: RetentionPolicy, now: datetime) -> dict[str, int]:
    b, run = PayloadBlob, Run
    before = cutoff(now, policy.payload_blobs_seconds)
    if before is None:
        return {}
    # The partial index of open runs: its predicate written as the index has it.
    oldest_open = session.scalar(select(func.min(run.created_at)).where(text(OPEN_RUN)))
    if oldest_open is not None:
        before = min(before, oldest_open - timedelta(seconds=BLOB_REFRESH_SECONDS))
    keys = list(
        session.scalars(
            select(b.sha256)
            .where(b.last_used_at < before)
            .order_by(b.last_used_at, b.sha256)
            .limit(policy.page_size)
        )
    )
    return {"payload_blobs": payload_blobs.delete_blobs(session, keys, before)}
