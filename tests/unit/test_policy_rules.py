"""Post-execution policy evaluation and the outcome rules that follow from it."""

from decimal import Decimal

import pytest

from domain.enums import (
    EvaluationOutcome,
    IncidentCategory,
    PolicyOutcome,
    RuleKind,
    RunStatus,
)
from domain.outcome import Outcome, after_evaluation
from domain.policy_rules import Rule, evaluate, validate_params


def rule(name, kind, params, outcome):
    return Rule(f"id-{name}", name, kind, params, outcome)


def run(**kw):
    base = dict(cost=Decimal("1"), steps_done=3, skills_used=["echo"], budget=None,
                violations=[], rules=[])  # fmt: skip
    return evaluate(**{**base, **kw})


def test_no_rules_passes():
    assert run().outcome == EvaluationOutcome.PASSED


def test_matches_produce_records_and_breaches():
    rules = [
        rule("cost", RuleKind.MAX_COST, {"max": "0.5"}, PolicyOutcome.BLOCKED),
        rule("steps", RuleKind.MAX_STEPS, {"max": 10}, PolicyOutcome.WARNED),
        rule("http", RuleKind.SKILL_USED, {"skill": "echo"}, PolicyOutcome.WARNED),
    ]
    found = run(rules=rules)
    assert found.outcome == EvaluationOutcome.BLOCKED
    assert [m.rule_name for m in found.matches] == ["cost", "http"]
    assert [(b.limit_type, b.value, b.threshold) for b in found.breaches] == [
        ("MAX_COST", Decimal("1"), Decimal("0.5"))
    ]


def test_budget_overrun_is_prevented_with_a_breach():
    found = run(budget=Decimal("0.9"))
    assert found.outcome == EvaluationOutcome.PREVENTED
    assert found.breaches[0].limit_type == "BUDGET"


def test_mid_run_termination_is_a_prevention_record():
    found = run(violations=["BUDGET_EXCEEDED"])
    assert found.outcome == EvaluationOutcome.PREVENTED
    assert "BUDGET_EXCEEDED" in found.matches[0].reason


def test_warned_run_still_succeeds():
    outcome = after_evaluation(Outcome(RunStatus.SUCCEEDED), EvaluationOutcome.WARNED, False)
    assert outcome.succeeded and outcome.incident is None


def test_blocked_run_fails_policy_with_incident():
    outcome = after_evaluation(Outcome(RunStatus.SUCCEEDED), EvaluationOutcome.BLOCKED, False)
    assert outcome.status == RunStatus.FAILED_POLICY
    assert outcome.incident.category == IncidentCategory.POLICY_VIOLATION


def test_budget_breach_incident_category():
    outcome = after_evaluation(Outcome(RunStatus.SUCCEEDED), EvaluationOutcome.PREVENTED, True)
    assert outcome.incident.category == IncidentCategory.BUDGET_BREACH


def test_failed_run_keeps_its_own_incident():
    failed = Outcome(RunStatus.FAILED, "boom", None)
    outcome = after_evaluation(failed, EvaluationOutcome.BLOCKED, False)
    assert outcome.status == RunStatus.FAILED and outcome.incident is not None


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        (RuleKind.MAX_COST, {}, "params.max"),
        (RuleKind.MAX_STEPS, {"max": -1}, "negative"),
        (RuleKind.SKILL_USED, {"skill": 3}, "params.skill"),
    ],
)
def test_rule_params_are_validated(kind, params, message):
    with pytest.raises(ValueError, match=message):
        validate_params(kind, params)
