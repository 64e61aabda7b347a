"""The purge rules of services.retention on SQLite and PostgreSQL: expired rows go and fresh
ones stay; an event a reactor still owes or may still read stays; ledger rows go only once
their run can no longer be retried; findings of a run still reconciled stay; a TTL of 0
keeps forever; more rows than a page go in one call, a page per transaction; the failure
event of a reconciliation is written once.

Each test has a database of its own (fresh_database): the counts are exact."""

from dataclasses import replace

import pytest
from sqlalchemy import event, select

from db.models import (
    EventDelivery,
    OutboxEvent,
    ReconciliationFinding,
    SuppressedAlert,
)
from domain.enums import Phase
from domain.ids import SYSTEM_TENANT
from domain.reconcile_messages import TOPIC_RECONCILIATION_FAILED, PurgeCounts
from domain.retention import RetentionPolicy
from services import reconciliation
from services.ledger import Execution
from services.retention import purge_expired
from tests.conftest import BACKENDS
from tests.retention_support import (
    DAY,
    SECOND,
    ack_expectation,
    add_event,
    add_expectation,
    add_finding,
    add_kept_forever,
    add_ledger_rows,
    add_run,
    add_suppressed,
    database_url,
    deliver_all,
    ids,
    ledger_workflows,
    migrated,
    new_id,
    now,
    set_cursor,
    table_counts,
)

pytestmark = pytest.mark.timeout(60)

POLICY = RetentionPolicy()  # 30 days everywhere, sweep overlap 300 s, pages of 500


@pytest.fixture(params=BACKENDS)
def db(request, fresh_database, tmp_path):  # noqa: ANN001, ANN201
    engine, sessions = migrated(database_url(request.param, fresh_database, tmp_path))
    yield sessions
    engine.dispose()


def test_expired_rows_go_and_fresh_ones_stay(db):
    t = now()
    old, fresh = t - 40 * DAY, t - 10 * DAY
    set_cursor(db, "audit-alerts", t)
    old_event, fresh_event = add_event(db, old, (True, True)), add_event(db, fresh, (True, True))
    closed_run = new_id("closed")
    add_expectation(db, closed_run, old, acked=True)
    old_finding, fresh_finding = (
        add_finding(db, closed_run, old),
        add_finding(db, closed_run, fresh),
    )
    old_alert, fresh_alert = add_suppressed(db, old), add_suppressed(db, fresh)
    done_long_ago = add_run(db, Phase.COMPLETED, created_at=old, finalized_at=old + DAY)
    done_lately = add_run(db, Phase.COMPLETED, created_at=fresh, finalized_at=fresh + DAY)
    add_kept_forever(db, done_long_ago, old)
    kept_before = table_counts(db)

    result = purge_expired(db, POLICY)

    assert result.purged == PurgeCounts(outbox_events=1, event_deliveries=2,
                                        reconciliation_findings=1, suppressed_alerts=1,
                                        idempotency_ledger=3)  # fmt: skip
    assert result.done and result.pages == 4  # one page per table with rows to purge
    assert ids(db, OutboxEvent.id) == {fresh_event}
    assert ids(db, EventDelivery.event_id) == {fresh_event}
    assert ids(db, ReconciliationFinding.id) == {fresh_finding}
    assert ids(db, SuppressedAlert.id) == {fresh_alert}
    assert ledger_workflows(db) == {f"run-{done_lately}": 3}
    assert table_counts(db) == kept_before  # audit ledger, acks, expectations: all kept
    assert {old_event, old_finding, old_alert}.isdisjoint(
        ids(db, OutboxEvent.id) | ids(db, ReconciliationFinding.id) | ids(db, SuppressedAlert.id)
    )
    assert purge_expired(db, POLICY).purged == PurgeCounts()  # nothing left the second time


def test_an_event_a_reactor_still_owes_or_may_still_read_is_kept(db):
    t = now()
    overlap = POLICY.sweep_overlap_seconds
    lagging = t - 35 * DAY  # a group whose reactor was down: its cursor is 35 days back
    set_cursor(db, "audit-alerts", t)
    set_cursor(db, "alert-sinks", lagging)
    undelivered = add_event(db, t - 50 * DAY, (True, False))
    not_discovered = add_event(db, lagging + DAY, ())  # after the lagging cursor: not read yet
    in_sweep_window = add_event(db, lagging - overlap / 2 * SECOND, ())
    behind_every_cursor = add_event(db, lagging - DAY, (True,))
    without_handlers = add_event(db, t - 50 * DAY, ())  # a topic no handler takes

    result = purge_expired(db, POLICY)

    assert result.purged.outbox_events == 2 and result.purged.event_deliveries == 1
    assert ids(db, OutboxEvent.id) == {undelivered, not_discovered, in_sweep_window}
    assert {behind_every_cursor, without_handlers}.isdisjoint(ids(db, OutboxEvent.id))
    deliver_all(db, undelivered)  # its receiver came back
    set_cursor(db, "alert-sinks", t)  # and the lagging reactor caught up
    again = purge_expired(db, POLICY)
    assert (again.purged.outbox_events, again.purged.event_deliveries) == (3, 2)
    assert ids(db, OutboxEvent.id) == set()


def test_an_event_a_group_starting_now_would_sweep_is_kept(db):
    """No cursor at all: a group starting now begins ``overlap`` back and sweeps ``overlap``
    further, so with a TTL just over the overlap an event within twice of it stays."""
    t = now()
    policy = replace(POLICY, outbox_events_seconds=400, sweep_overlap_seconds=300)
    within_reach = add_event(db, t - 500 * SECOND, (True,))
    out_of_reach = add_event(db, t - 700 * SECOND, (True,))
    result = purge_expired(db, policy)
    assert result.purged.outbox_events == 1
    assert ids(db, OutboxEvent.id) == {within_reach}
    assert out_of_reach not in ids(db, OutboxEvent.id)


def test_ledger_rows_go_only_once_their_run_can_no_longer_be_retried(db):
    t = now()
    old = t - 40 * DAY
    open_for_long = add_run(db, Phase.EXECUTING, created_at=old)  # (paused for 40 days)
    finalized_long_ago = add_run(db, Phase.COMPLETED, created_at=old, finalized_at=old + DAY)
    failed_lately = add_run(db, Phase.FAILED, created_at=old, finalized_at=t - DAY)
    failed_as_stale = add_run(db, Phase.FAILED, created_at=old, updated_at=old + DAY)
    add_ledger_rows(db, "candidate-c1", old, 2)  # not a run's: kept
    add_ledger_rows(db, "run-no-such-run", old, 2)  # no run row (refused at open): kept

    result = purge_expired(db, POLICY)

    assert result.purged == PurgeCounts(idempotency_ledger=6)
    assert ledger_workflows(db) == {
        f"run-{open_for_long}": 3,
        f"run-{failed_lately}": 3,
        "candidate-c1": 2,
        "run-no-such-run": 2,
    }
    assert {f"run-{finalized_long_ago}", f"run-{failed_as_stale}"}.isdisjoint(ledger_workflows(db))


def test_findings_of_a_run_still_reconciled_are_kept(db):
    """A stale run's finalize_run stays owed: every reconciliation reads it again, and its
    finding is what keeps that reconciliation from writing the finding (and its event) anew."""
    old = now() - 40 * DAY
    stale_run = new_id("stale")
    owed = add_expectation(db, stale_run, old, acked=False)
    finding = add_finding(db, stale_run, old)
    assert purge_expired(db, POLICY).purged == PurgeCounts()
    assert ids(db, ReconciliationFinding.id) == {finding}
    ack_expectation(db, owed)  # the run finalized after all
    assert purge_expired(db, POLICY).purged == PurgeCounts(reconciliation_findings=1)
    assert ids(db, ReconciliationFinding.id) == set()


def test_a_ttl_of_zero_keeps_rows_forever(db):
    ancient = now() - 3650 * DAY
    forever = RetentionPolicy(0, 0, 0, 0)
    event_id = add_event(db, ancient)
    add_finding(db, new_id("run"), ancient)
    add_suppressed(db, ancient)
    run_id = add_run(db, Phase.COMPLETED, created_at=ancient, finalized_at=ancient)
    result = purge_expired(db, forever)
    assert (result.purged, result.pages, result.done) == (PurgeCounts(), 0, True)
    assert ids(db, OutboxEvent.id) == {event_id}
    assert ledger_workflows(db) == {f"run-{run_id}": 3}
    # one table kept, the others purged: each TTL is its own
    assert purge_expired(db, replace(forever, suppressed_alerts_seconds=1)).purged == PurgeCounts(
        suppressed_alerts=1
    )


def test_more_rows_than_a_page_go_in_one_call_a_page_per_transaction(db):
    old = now() - 40 * DAY
    for _ in range(7):
        add_finding(db, new_id("closed"), old)
    for _ in range(4):
        add_suppressed(db, old)
    transactions: list[list[tuple[str, int]]] = [[]]

    def deleted(_conn, cursor, statement, *_):  # noqa: ANN001, ANN202
        if statement.startswith("DELETE FROM "):
            transactions[-1].append((statement.split()[2], cursor.rowcount))

    engine = db.kw["bind"]
    listeners = (("after_cursor_execute", deleted),
                 ("commit", lambda _conn: transactions.append([])))  # fmt: skip
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        result = purge_expired(db, replace(POLICY, page_size=3))
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)
    assert result.purged == PurgeCounts(reconciliation_findings=7, suppressed_alerts=4)
    assert (result.pages, result.done) == (5, True)
    # one transaction per page, never more than a page in one; a look at the outbox, at
    # the ledger and at the payload blobs that found nothing to delete
    assert transactions[:-1] == [
        [],
        [("reconciliation_findings", 3)],
        [("reconciliation_findings", 3)],
        [("reconciliation_findings", 1)],
        [("suppressed_alerts", 3)],
        [("suppressed_alerts", 1)],
        [],
        [],
    ]
    assert ids(db, ReconciliationFinding.id) == ids(db, SuppressedAlert.id) == set()


def test_a_call_stops_after_max_pages_and_the_next_one_finishes(db):
    old = now() - 40 * DAY
    for _ in range(7):
        add_suppressed(db, old)
    policy = replace(POLICY, page_size=3, max_pages=2)
    first = purge_expired(db, policy)
    assert (first.purged.suppressed_alerts, first.pages, first.done) == (6, 2, False)
    second = purge_expired(db, policy)
    assert (second.purged.suppressed_alerts, second.pages, second.done) == (1, 1, True)
    assert ids(db, SuppressedAlert.id) == set()


def test_the_failure_event_of_a_reconciliation_is_written_once(db):
    execution = Execution("reconcile-manual-x", "temporal-run-1")
    first = reconciliation.report_failure(db, execution, "activity reconcile.scan failed: boom")
    again = reconciliation.report_failure(db, execution, "activity reconcile.scan failed: boom")
    assert (first.written, again.written) == (True, False)
    assert first.event_id == again.event_id
    with db() as session:
        events = list(
            session.scalars(
                select(OutboxEvent).where(OutboxEvent.topic == TOPIC_RECONCILIATION_FAILED)
            )
        )
    assert [(e.id, e.tenant_id, e.run_id) for e in events] == [
        (first.event_id, SYSTEM_TENANT, None)
    ]
    assert events[0].payload == {
        "tenant_id": SYSTEM_TENANT,
        "workflow_id": "reconcile-manual-x",
        "run_id": "temporal-run-1",
        "error": "activity reconcile.scan failed: boom",
        "severity": "HIGH",
    }
    other = reconciliation.report_failure(
        db, Execution("reconcile-manual-x", "temporal-run-2"), "x"
    )
    assert other.written and other.event_id != first.event_id  # another run: its own event
