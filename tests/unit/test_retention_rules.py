"""Retention without a database: the cutoffs, the policy's and the settings' refusals (each
naming the setting), and how `starter.py reconcile` prints what was purged."""

from datetime import UTC, datetime, timedelta

import pytest

from cli.reconcile import _summary_text
from domain.reconcile_messages import PurgeCounts, ReconcileSummary, ReconcileTotals
from domain.retention import RetentionError, RetentionPolicy, cutoff, outbox_cutoff
from runtime.settings import Settings
from tests.helpers import assert_settings_refused

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def test_cutoffs():
    assert cutoff(NOW, 0) is None  # keep forever
    assert cutoff(NOW, 86_400) == NOW - DAY
    assert outbox_cutoff(NOW, 0, 300, [NOW]) is None
    # no cursor: the TTL, or what a group starting now would sweep (2 × overlap)
    assert outbox_cutoff(NOW, 30 * 86_400, 300, []) == NOW - 30 * DAY
    assert outbox_cutoff(NOW, 400, 300, []) == NOW - timedelta(seconds=600)
    # a lagging cursor holds back everything in its sweep window and after it
    lagging = NOW - 40 * DAY
    assert outbox_cutoff(NOW, 30 * 86_400, 300, [NOW, lagging]) == lagging - timedelta(seconds=300)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"findings_seconds": -1}, "findings_seconds: must be >= 0 (0 keeps forever), got -1"),
        ({"page_size": 0}, "page_size and max_pages: at least 1"),
        (
            {"outbox_events_seconds": 300, "sweep_overlap_seconds": 300},
            "the outbox-event TTL (300 s) must exceed the reactor's sweep overlap (300 s)",
        ),
    ],
)
def test_the_policy_refuses_what_would_lose_rows_still_needed(fields, message):
    with pytest.raises(RetentionError) as refused:
        RetentionPolicy(**fields)
    assert message in str(refused.value)


def test_settings_build_the_policy_and_zero_keeps_forever():
    settings = Settings(_env_file=None, retention_findings_seconds=0, retention_page_size=50,
                        reactor_sweep_overlap_seconds=120)  # fmt: skip
    policy = settings.retention_policy()
    assert (policy.findings_seconds, policy.page_size, policy.sweep_overlap_seconds) == (0, 50, 120)
    assert policy.outbox_events_seconds == 30 * 86_400
    assert Settings(_env_file=None, retention_outbox_events_seconds=0,
                    reactor_sweep_overlap_seconds=10**6).retention_policy()  # fmt: skip


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RETENTION_FINDINGS_SECONDS": "-5"}, "retention_findings_seconds"),
        ({"RETENTION_SUPPRESSED_ALERTS_SECONDS": "a month"}, "retention_suppressed_alerts_seconds"),
        ({"RETENTION_PAGE_SIZE": "0"}, "retention_page_size"),
        (
            {"RETENTION_OUTBOX_EVENTS_SECONDS": "600", "REACTOR_SWEEP_OVERLAP_SECONDS": "900"},
            "RETENTION_OUTBOX_EVENTS_SECONDS=600 must exceed REACTOR_SWEEP_OVERLAP_SECONDS=900",
        ),
    ],
)
def test_a_bad_ttl_is_refused_naming_the_setting(env, named, monkeypatch, tmp_path, capsys):
    assert_settings_refused(env, named, monkeypatch, tmp_path, capsys)


def test_the_reconcile_summary_prints_what_was_purged():
    summary = ReconcileSummary(
        as_of=NOW,
        ack_watermark=NOW,
        totals=ReconcileTotals(),
        reports=[],
        purged_log_entries=2,
        purged=PurgeCounts(
            outbox_events=3, event_deliveries=6, idempotency_ledger=40, payload_blobs=7
        ),  # fmt: skip
        purge_pages=5,
    )
    text = _summary_text(summary.model_dump(mode="json"))
    assert text.splitlines()[-1] == (
        "purged expired rows: outbox_events 3, event_deliveries 6, reconciliation_findings 0, "
        "suppressed_alerts 0, idempotency_ledger 40, payload_blobs 7 (in 5 pages); "
        "orchestration-log entries: 2"
    )
    nothing = summary.model_copy(update={"purged": PurgeCounts(), "purge_pages": 0})
    assert _summary_text(nothing.model_dump(mode="json")).splitlines()[-1] == (
        "purged expired rows: none; orchestration-log entries: 2"
    )
