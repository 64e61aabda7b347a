"""Property tests (hypothesis) for the laws of the reconciler and of the findings built on it."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.contract import FINALIZE_RUN
from domain.reconciler import AckRow, ExpectationRow, ReconciliationStatus, reconcile
from domain.reconciliation import (
    TOPIC_MISSING,
    TOPIC_STALE,
    TOPIC_TIMEOUT,
    FindingKind,
    WorkflowState,
    assess,
    event_plan,
)

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2025, 1, 1, 12, tzinfo=UTC)
ACTIONS = [
    ("runs", "authorize"),
    ("traces", "start_trace"),
    ("traces", "record_step:0"),
    ("policies", "evaluate_policy"),
    ("incidents", "create_incident"),
    ("traces", "complete_trace"),
    FINALIZE_RUN,
]

actions = st.sampled_from(ACTIONS)
deadlines = st.one_of(st.none(), st.integers(-3600, 3600).map(lambda s: NOW + timedelta(seconds=s)))


@st.composite
def expectation_rows(draw: st.DrawFn) -> list[ExpectationRow]:
    # One row per (domain, action), as the unique constraint of the table guarantees.
    chosen = draw(st.lists(actions, unique=True, max_size=len(ACTIONS)))
    return [ExpectationRow(d, a, draw(deadlines), draw(st.booleans())) for d, a in chosen]


@st.composite
def contracts(draw: st.DrawFn) -> tuple[list[ExpectationRow], list[AckRow]]:
    expectations = draw(expectation_rows())
    acks = [AckRow(d, a, draw(st.booleans())) for d, a in draw(st.lists(actions, max_size=12))]
    return expectations, acks


def expected_set(expectations: list[ExpectationRow]) -> set[tuple[str, str]]:
    return {(e.domain, e.action) for e in expectations if not e.withdrawn}


def acked_set(acks: list[AckRow]) -> set[tuple[str, str]]:
    return {(a.domain, a.action) for a in acks if not a.rolled_back}


def duplicated(acks: list[AckRow]) -> set[tuple[str, str]]:
    live = [(a.domain, a.action) for a in acks if not a.rolled_back]
    return {k for k in live if live.count(k) > 1}


@given(contracts())
def test_missing_never_acked(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    assert set(result.missing) & acked_set(acks) == set()


@given(contracts())
def test_missing_and_acked_partition_the_expected(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    expected = expected_set(expectations)
    assert set(result.missing) | (expected & acked_set(acks)) == expected
    assert set(result.missing) <= expected


@given(contracts())
def test_drift_is_unexpected_or_acked_twice(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    # drift ∩ expected = ∅, except an expected action acked twice (itself drift).
    assert set(result.drift) & expected_set(expectations) <= duplicated(acks)
    assert set(result.drift) == (acked_set(acks) - expected_set(expectations)) | duplicated(acks)


@given(contracts())
def test_drift_and_expected_are_disjoint_without_duplicate_acks(contract):
    expectations, acks = contract
    unique_acks = list({(a.domain, a.action, a.rolled_back): a for a in acks}.values())
    result = reconcile(expectations, unique_acks, NOW)
    assert set(result.drift) & expected_set(expectations) == set()


@given(contracts())
def test_complete_iff_nothing_missing_drift_invalid_and_finalize_acked(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    finalize_declared = any((e.domain, e.action) == FINALIZE_RUN for e in expectations)
    finalize_ok = not finalize_declared or FINALIZE_RUN in acked_set(acks)
    clean = not result.missing and not result.drift and not result.invalid and finalize_ok
    assert (result.status == ReconciliationStatus.COMPLETE) == clean
    assert result.clean == clean


@given(contracts())
def test_stale_iff_finalize_declared_and_not_acked(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    finalize_declared = any((e.domain, e.action) == FINALIZE_RUN for e in expectations)
    stale = finalize_declared and FINALIZE_RUN not in acked_set(acks)
    assert result.stale == stale
    assert (result.status == ReconciliationStatus.STALE) == stale
    if result.finalize_overdue:
        assert result.stale


@given(contracts())
def test_withdrawn_expectations_are_never_missing_nor_invalid(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    withdrawn = {(e.domain, e.action) for e in expectations if e.withdrawn}
    assert set(result.missing) & withdrawn == set()
    assert set(result.invalid) & withdrawn == set()


@given(contracts())
def test_invalid_is_exactly_the_live_expectations_without_deadline(contract):
    expectations, acks = contract
    result = reconcile(expectations, acks, NOW)
    no_deadline = {(e.domain, e.action) for e in expectations if e.deadline is None}
    assert set(result.invalid) == no_deadline & expected_set(expectations)


@given(contracts(), st.lists(actions, max_size=6))
def test_rollback_acks_are_not_counted_but_reported(contract, undone):
    expectations, acks = contract
    before = reconcile(expectations, acks, NOW)
    after = reconcile(expectations, acks + [AckRow(d, a, True) for d, a in undone], NOW)
    assert (after.missing, after.drift, after.status) == (
        before.missing,
        before.drift,
        before.status,
    )
    assert set(undone) <= set(after.rolled_back)


@given(contracts(), st.randoms())
def test_order_of_rows_does_not_matter(contract, rnd: random.Random):
    expectations, acks = contract
    shuffled_e, shuffled_a = expectations[:], acks[:]
    rnd.shuffle(shuffled_e)
    rnd.shuffle(shuffled_a)
    assert reconcile(expectations, acks, NOW) == reconcile(shuffled_e, shuffled_a, NOW)


# ----- findings of the scheduled reconciliation (domain.reconciliation) -------------------

states = st.sampled_from(list(WorkflowState))


@settings(max_examples=200)
@given(contracts(), states)
def test_findings_follow_the_verdict(contract, state):
    expectations, acks = contract
    found = assess("r1", expectations, acks, state, NOW)
    kinds = {f.kind for f in found.findings}
    ids = [f.id for f in found.findings]
    assert len(ids) == len(set(ids))
    rec = found.reconciliation
    if rec.stale and state == WorkflowState.RUNNING:
        assert FindingKind.MISSING not in kinds and FindingKind.STALE not in kinds
        assert (FindingKind.LATE in kinds) == bool(found.overdue)
    else:
        assert FindingKind.LATE not in kinds
        missing = {(f.domain, f.action) for f in found.findings if f.kind == FindingKind.MISSING}
        assert missing == set(rec.missing)
        stale = [f for f in found.findings if f.kind == FindingKind.STALE]
        assert [f.cause for f in stale] == ([state] if rec.stale else [])
    drift = {(f.domain, f.action) for f in found.findings if f.kind == FindingKind.DRIFT}
    assert drift == set(rec.drift)
    assert found.overdue == [
        a
        for a in rec.missing
        if any(
            (e.domain, e.action) == a and e.deadline is not None and e.deadline <= NOW
            for e in expectations
        )
    ]


@given(contracts(), states)
def test_same_input_same_finding_ids_and_nothing_new_means_no_event(contract, state):
    expectations, acks = contract
    first = assess("r1", expectations, acks, state, NOW)
    again = assess("r1", expectations, acks, state, NOW)
    assert [f.id for f in first.findings] == [f.id for f in again.findings]
    assert event_plan(again, []) == []


@given(contracts(), states)
def test_events_cover_new_findings_once(contract, state):
    expectations, acks = contract
    found = assess("r1", expectations, acks, state, NOW)
    events = event_plan(found, found.findings)
    keys = [(e.topic, e.key) for e in events]
    assert len(keys) == len(set(keys))
    topics = [e.topic for e in events]
    assert topics.count(TOPIC_STALE) == sum(f.kind == FindingKind.STALE for f in found.findings)
    assert topics.count(TOPIC_TIMEOUT) == sum(f.kind == FindingKind.LATE for f in found.findings)
    if found.reconciliation.stale:
        # A stale run's missing actions travel inside its stale event.
        assert TOPIC_MISSING not in topics
    for event in events:
        if event.topic == TOPIC_MISSING:
            assert {tuple(a) for a in event.payload["actions"]} <= set(found.reconciliation.missing)
