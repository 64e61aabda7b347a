"""The predecessor's mid-execution decision table, pause authority and check throttling."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.control import (
    RESUMABLE_BY,
    Baseline,
    LiveState,
    check_due,
    decide,
    effective_budget,
    find_violations,
    may_resume,
)
from domain.enums import Authority, PauseReason, PolicyDecision, ViolationType

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("violation", "expected"),
    [
        (None, PolicyDecision.CONTINUE),
        (ViolationType.BUDGET_EXCEEDED, PolicyDecision.TERMINATE),
        (ViolationType.POLICY_DISABLED, PolicyDecision.PAUSE),
        (ViolationType.MANUAL_STOP, PolicyDecision.TERMINATE),
        (ViolationType.TENANT_SUSPENDED, PolicyDecision.TERMINATE),
        (ViolationType.LIMIT_CHANGED, PolicyDecision.PAUSE),
    ],
)
def test_decision_table(violation, expected):
    assert decide([violation] if violation else []) == expected


def test_disabled_check_skips():
    assert decide([ViolationType.BUDGET_EXCEEDED], enabled=False) == PolicyDecision.SKIP


def test_terminate_beats_pause():
    violations = [ViolationType.LIMIT_CHANGED, ViolationType.TENANT_SUSPENDED]
    assert decide(violations) == PolicyDecision.TERMINATE


def _state(**overrides):
    base = dict(
        cost=Decimal("1"),
        budget_limit=Decimal("5"),
        tenant_active=True,
        stop_requested=False,
        limits_version=1,
        policy_version=2,
        enabled_rule_ids=frozenset({"a", "b"}),
    )
    return LiveState(**{**base, **overrides})


BASELINE = Baseline(1, 2, frozenset({"a", "b"}))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, []),
        ({"cost": Decimal("5.01")}, [ViolationType.BUDGET_EXCEEDED]),
        ({"cost": Decimal("5")}, []),
        ({"enabled_rule_ids": frozenset({"a"}), "policy_version": 3},
         [ViolationType.POLICY_DISABLED]),
        ({"stop_requested": True}, [ViolationType.MANUAL_STOP]),
        ({"tenant_active": False}, [ViolationType.TENANT_SUSPENDED]),
        ({"limits_version": 2}, [ViolationType.LIMIT_CHANGED]),
        ({"policy_version": 3}, [ViolationType.LIMIT_CHANGED]),
        ({"budget_limit": None, "cost": Decimal("999")}, []),
    ],
)  # fmt: skip
def test_violations_from_live_state(overrides, expected):
    assert find_violations(_state(**overrides), BASELINE) == expected


def test_check_due_throttles_by_time_and_steps():
    args = dict(forced=False, interval=timedelta(seconds=30), min_steps=3)
    assert check_due(step_index=0, last_check_at=T0, now=T0, steps_since_check=0, **args)
    later = T0 + timedelta(seconds=31)
    assert not check_due(step_index=5, last_check_at=T0, now=later, steps_since_check=2, **args)
    assert not check_due(step_index=5, last_check_at=T0, now=T0, steps_since_check=9, **args)
    assert check_due(step_index=5, last_check_at=T0, now=later, steps_since_check=3, **args)
    forced = {**args, "forced": True}
    assert check_due(step_index=5, last_check_at=T0, now=T0, steps_since_check=0, **forced)


@pytest.mark.parametrize("reason", list(PauseReason))
def test_resume_authority_follows_pause_reason(reason):
    for authority in Authority:
        assert may_resume(reason, authority) == (authority in RESUMABLE_BY[reason])
    assert may_resume(reason, Authority.FOUNDER_ONLY)


def test_policy_pause_cannot_be_resumed_by_a_tenant_user():
    assert not may_resume(PauseReason.POLICY_CHANGE, Authority.TENANT_USER)
    assert may_resume(PauseReason.MANUAL_PAUSE, Authority.TENANT_USER)


def test_effective_budget_is_the_tighter_limit():
    assert effective_budget(Decimal("3"), Decimal("2")) == Decimal("2")
    assert effective_budget(None, Decimal("2")) == Decimal("2")
    assert effective_budget(Decimal("3"), None) == Decimal("3")
    assert effective_budget(None, None) is None
