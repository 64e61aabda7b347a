"""The tenant decides, a run may only tighten (domain.governance), and the judgement of rules
and budget before a step (domain.policy_rules.judge_step)."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from domain.enums import Authority, PolicyOutcome, RuleKind
from domain.governance import OPTIONS, LooseningRefused, TenantGovernance, resolve_config
from domain.models import RunConfig, RunOptions
from domain.policy_rules import Rule, StepFacts, judge_step

DEFAULTS = RunConfig(
    observability_mode="DEGRADED",
    policy_check_enabled=True,
    policy_check_interval_seconds=30,
    policy_check_min_steps=3,
    pause_sla_seconds=3600,
    pause_notify_before_seconds=300,
    pause_timeout_behavior="TERMINATE",
    run_timeout_seconds=7200,
    finalize_grace_seconds=300,
    budget_warning_percent=80,
)

TIGHTER = {
    "observability_mode": "STRICT",
    "policy_check_enabled": True,
    "policy_check_interval_seconds": 0,
    "policy_check_min_steps": 1,
    "pause_sla_seconds": 60,
    "pause_notify_before_seconds": 600,
    "pause_timeout_behavior": "TERMINATE",
    "run_timeout_seconds": 60,
    "budget_warning_percent": 50,
}
LOOSER = {
    "observability_mode": "PERMISSIVE",
    "policy_check_enabled": False,
    "policy_check_interval_seconds": 3600,
    "policy_check_min_steps": 10,
    "pause_sla_seconds": 7200,
    "pause_notify_before_seconds": 0,
    "pause_timeout_behavior": "CONTINUE",
    "run_timeout_seconds": 86400,
    "budget_warning_percent": 95,
}


def test_every_option_has_a_tighter_and_a_looser_case():
    assert set(TIGHTER) == set(LOOSER) == set(OPTIONS)


@pytest.mark.parametrize("option", OPTIONS)
def test_an_option_may_tighten(option):
    config = resolve_config(DEFAULTS, None, RunOptions(**{option: TIGHTER[option]}))
    assert getattr(config, option) == RunOptions(**{option: TIGHTER[option]}).model_dump()[option]


@pytest.mark.parametrize("option", OPTIONS)
def test_an_option_that_loosens_is_refused_naming_it(option):
    with pytest.raises(LooseningRefused) as refused:
        resolve_config(
            DEFAULTS, None, RunOptions(**{option: LOOSER[option]}), Authority.TENANT_USER
        )
    assert str(refused.value).startswith(f"option {option}=")
    assert "the tenant does not allow runs submitted as TENANT_USER to loosen it" in str(
        refused.value
    )


@pytest.mark.parametrize("option", OPTIONS)
def test_the_tenant_may_allow_an_authority_to_loosen(option):
    tenant = TenantGovernance(loosen={option: ["TENANT_ADMIN"]})
    options = RunOptions(**{option: LOOSER[option]})
    config = resolve_config(DEFAULTS, tenant, options, Authority.TENANT_ADMIN)
    assert getattr(config, option) == options.model_dump()[option]
    with pytest.raises(LooseningRefused):
        resolve_config(DEFAULTS, tenant, options, Authority.TENANT_USER)
    with pytest.raises(LooseningRefused, match="runs without a submitter"):
        resolve_config(DEFAULTS, tenant, options, None)


def test_the_tenants_values_are_the_base_a_run_is_compared_with():
    tenant = TenantGovernance(policy_check_enabled=False, pause_timeout_behavior="ESCALATE")
    config = resolve_config(DEFAULTS, tenant, RunOptions())
    assert (config.policy_check_enabled, config.pause_timeout_behavior) == (False, "ESCALATE")
    # Turning checks back on, or TERMINATE instead of ESCALATE, tightens.
    tightened = RunOptions(policy_check_enabled=True, pause_timeout_behavior="TERMINATE")
    assert resolve_config(DEFAULTS, tenant, tightened).policy_check_enabled is True
    with pytest.raises(LooseningRefused, match="pause_timeout_behavior=CONTINUE"):
        resolve_config(DEFAULTS, tenant, RunOptions(pause_timeout_behavior="CONTINUE"))


def test_a_short_sla_that_continues_by_itself_is_a_loosening():
    # The way around the resume authority seen in the issue: a 1 s SLA, then CONTINUE.
    options = RunOptions(pause_sla_seconds=1, pause_timeout_behavior="CONTINUE")
    with pytest.raises(LooseningRefused, match="pause_sla_seconds=1 loosens"):
        resolve_config(DEFAULTS, None, options, Authority.TENANT_USER)
    with pytest.raises(LooseningRefused, match="pause_timeout_behavior=CONTINUE loosens"):
        resolve_config(DEFAULTS, None, RunOptions(pause_timeout_behavior="CONTINUE"))
    tenant = TenantGovernance(pause_timeout_behavior="CONTINUE")  # the tenant's choice
    with pytest.raises(LooseningRefused, match="pause_sla_seconds=1"):
        resolve_config(DEFAULTS, tenant, RunOptions(pause_sla_seconds=1))
    assert resolve_config(DEFAULTS, tenant, RunOptions(pause_sla_seconds=7200)).pause_sla_seconds


def test_bad_tenant_settings_are_refused_naming_the_field():
    with pytest.raises(ValidationError, match="unknown option 'budget'"):
        TenantGovernance(loosen={"budget": ["TENANT_ADMIN"]})
    with pytest.raises(ValidationError, match="loosen"):
        TenantGovernance(loosen={"policy_check_enabled": ["NOBODY"]})
    with pytest.raises(ValidationError, match="pause_sla_seconds"):
        TenantGovernance(pause_sla_seconds=0)
    with pytest.raises(ValidationError, match="Extra inputs"):
        TenantGovernance(budget_halt=False)


# ----- before a step ----------------------------------------------------------------------


def facts(index=1, skill="echo", cost="0.0001", reserved="0.0001", budget=None) -> StepFacts:
    return StepFacts(index, skill, Decimal(cost), Decimal(reserved),
                     Decimal(budget) if budget else None)  # fmt: skip


MATCHING = {  # each matches step 1 (the second step), skill echo, projected cost 0.0002
    RuleKind.SKILL_USED: {"skill": "echo"},
    RuleKind.MAX_STEPS: {"max": 1},
    RuleKind.MAX_COST: {"max": "0.00015"},
}
NOT_MATCHING = {
    RuleKind.SKILL_USED: {"skill": "llm"},
    RuleKind.MAX_STEPS: {"max": 2},
    RuleKind.MAX_COST: {"max": "0.0002"},
}


@pytest.mark.parametrize("kind", list(RuleKind))
@pytest.mark.parametrize("outcome", list(PolicyOutcome))
def test_every_rule_kind_and_outcome_before_a_step(kind, outcome):
    rule = Rule("r1", "the-rule", kind, MATCHING[kind], outcome)
    verdict = judge_step(facts(), [rule])
    if outcome == PolicyOutcome.WARNED:
        assert verdict.prevented is None and verdict.approval is None
        assert [(m.rule_name, m.outcome) for m in verdict.warnings] == [("the-rule", "WARNED")]
    elif outcome == PolicyOutcome.REQUIRE_APPROVAL:  # held for an approval, not stopped
        assert verdict.prevented is None and verdict.warnings == []
        assert verdict.approval.rule_name == "the-rule"
    else:
        assert verdict.prevented.rule_name == "the-rule" and verdict.prevented.outcome == outcome
        assert verdict.prevented.reason.startswith("step 1 (echo): ")
        assert verdict.warnings == []
    quiet = Rule("r2", "quiet", kind, NOT_MATCHING[kind], outcome)
    assert judge_step(facts(), [quiet]) == judge_step(facts(), [])


def test_blocked_wins_over_prevented_and_the_budget_over_both():
    rules = [Rule("p", "a-prevent", RuleKind.SKILL_USED, {"skill": "echo"}, "PREVENTED"),
             Rule("b", "z-block", RuleKind.MAX_STEPS, {"max": 0}, "BLOCKED")]  # fmt: skip
    assert judge_step(facts(), rules).prevented.rule_name == "z-block"
    over = judge_step(facts(budget="0.00019"), rules).prevented
    assert (over.rule_name, over.outcome) == ("budget", "PREVENTED")
    assert "would bring the cost to 0.0002 (reserved 0.0001), over the budget 0.00019" in (
        over.reason)  # fmt: skip
    assert judge_step(facts(budget="0.0002"), []).prevented is None  # exactly fits


def test_a_stop_wins_over_an_approval_and_the_digest_names_the_step_and_policy():
    from domain.policy_rules import step_digest

    approval = Rule("a", "ask-first", RuleKind.SKILL_USED, {"skill": "echo"}, "REQUIRE_APPROVAL")
    block = Rule("b", "no-more", RuleKind.MAX_STEPS, {"max": 1}, "BLOCKED")
    assert judge_step(facts(), [approval, block]).prevented.rule_name == "no-more"
    assert judge_step(facts(), [approval]).approval.rule_name == "ask-first"
    base = {"run_id": "r1", "index": 1, "skill": "echo", "input": {"text": "x"},
            "policy_version": 3}  # fmt: skip
    digest = step_digest(**base)
    assert len(digest) == 64 and digest == step_digest(**{**base, "input": {"text": "x"}})
    for change in ({"index": 2}, {"input": {"text": "y"}}, {"policy_version": 4},
                   {"run_id": "r2"}, {"skill": "template"}):  # fmt: skip
        assert step_digest(**{**base, **change}) != digest, change


def test_any_budget_warning_tightens_a_tenant_without_one():
    defaults = DEFAULTS.model_copy(update={"budget_warning_percent": None})
    config = resolve_config(defaults, None, RunOptions(budget_warning_percent=99))
    assert config.budget_warning_percent == 99
