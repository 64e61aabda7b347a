"""Post-execution policy evaluation: a pure function of the run's facts and the rules."""

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.enums import EvaluationOutcome, PolicyOutcome, RuleKind
from domain.hashchain import canonical_json

_SEVERITY = {
    EvaluationOutcome.PASSED: 0,
    EvaluationOutcome.WARNED: 1,
    EvaluationOutcome.PREVENTED: 2,
    EvaluationOutcome.BLOCKED: 3,
}


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    kind: RuleKind
    params: dict[str, Any]
    outcome: PolicyOutcome


@dataclass(frozen=True)
class Match:
    rule_id: str | None
    rule_name: str
    outcome: PolicyOutcome
    reason: str


@dataclass(frozen=True)
class Breach:
    limit_type: str
    value: Decimal
    threshold: Decimal


@dataclass(frozen=True)
class Evaluation:
    outcome: EvaluationOutcome
    matches: list[Match]
    breaches: list[Breach]


def evaluate(
    *,
    cost: Decimal,
    steps_done: int,
    skills_used: list[str],
    budget: Decimal | None,
    violations: list[str],
    rules: list[Rule],
) -> Evaluation:
    """Match every enabled rule; a budget overrun or a mid-run termination is PREVENTED."""
    matches: list[Match] = []
    breaches: list[Breach] = []
    if budget is not None and cost > budget:
        breaches.append(Breach("BUDGET", cost, budget))
        matches.append(Match(None, "budget", PolicyOutcome.PREVENTED, f"cost {cost} > {budget}"))
    for violation in violations:
        matches.append(
            Match(None, "mid_execution", PolicyOutcome.PREVENTED, f"run stopped: {violation}")
        )
    for rule in rules:
        if rule.outcome == PolicyOutcome.REQUIRE_APPROVAL:
            continue  # judged before the step it matches (judge_step)
        match = _match(rule, cost, steps_done, skills_used)
        if match is None:
            continue
        matches.append(Match(rule.id, rule.name, rule.outcome, match[0]))
        if match[1] is not None:
            breaches.append(match[1])
    outcome = max(
        (EvaluationOutcome(m.outcome) for m in matches),
        key=_SEVERITY.__getitem__,
        default=EvaluationOutcome.PASSED,
    )
    return Evaluation(outcome, matches, breaches)


def _match(
    rule: Rule, cost: Decimal, steps_done: int, skills_used: list[str]
) -> tuple[str, Breach | None] | None:
    if rule.kind == RuleKind.MAX_COST:
        limit = Decimal(str(rule.params["max"]))
        if cost > limit:
            return f"cost {cost} > {limit}", Breach("MAX_COST", cost, limit)
    elif rule.kind == RuleKind.MAX_STEPS:
        limit = Decimal(str(rule.params["max"]))
        if steps_done > limit:
            return f"steps {steps_done} > {limit}", Breach("MAX_STEPS", Decimal(steps_done), limit)
    elif rule.kind == RuleKind.SKILL_USED:
        skill = rule.params["skill"]
        if skill in skills_used:
            return f"skill {skill!r} was used", None
    return None


def validate_params(kind: RuleKind, params: dict[str, Any]) -> None:
    """Raise ValueError naming the parameter a rule of this kind lacks."""
    if kind in (RuleKind.MAX_COST, RuleKind.MAX_STEPS):
        if "max" not in params:
            raise ValueError(f"a {kind} rule needs params.max")
        if Decimal(str(params["max"])) < 0:
            raise ValueError("params.max must not be negative")
    elif kind == RuleKind.SKILL_USED and not isinstance(params.get("skill"), str):
        raise ValueError("a SKILL_USED rule needs params.skill (a skill name)")


# ----- before a step ----------------------------------------------------------------------

_STOPS = (PolicyOutcome.BLOCKED, PolicyOutcome.PREVENTED)


@dataclass(frozen=True)
class StepFacts:
    """What is known before step ``index`` runs: its skill, the run's cost so far, what the
    step may cost at most (its reservation) and the tightest budget (run's or tenant's)."""

    index: int
    skill: str
    cost_so_far: Decimal
    reserved: Decimal
    budget: Decimal | None

    @property
    def projected(self) -> Decimal:
        return self.cost_so_far + self.reserved


@dataclass(frozen=True)
class StepVerdict:
    prevented: Match | None  # the step must not run
    warnings: list[Match]  # it may run; each is recorded
    approval: Match | None = None  # it may run once approved (REQUIRE_APPROVAL)


def judge_step(facts: StepFacts, rules: list[Rule]) -> StepVerdict:
    """The budget (projected cost over the tightest budget: PREVENTED), then every enabled
    rule for this step: SKILL_USED (this step's skill), MAX_STEPS (this step would be one
    too many), MAX_COST (projected). A BLOCKED or PREVENTED match stops the step (the first
    BLOCKED, else the first PREVENTED, by rule name); else a REQUIRE_APPROVAL match (the
    first by rule name) holds it for an approval; the WARNED ones of a step that runs are
    recorded."""
    step = f"step {facts.index} ({facts.skill})"
    if facts.budget is not None and facts.projected > facts.budget:
        reason = (f"{step} would bring the cost to {facts.projected} (reserved "
                  f"{facts.reserved}), over the budget {facts.budget}")  # fmt: skip
        return StepVerdict(Match(None, "budget", PolicyOutcome.PREVENTED, reason), [])
    matches = []
    for rule in rules:
        why = _match_before(rule, facts)
        if why is not None:
            matches.append(Match(rule.id, rule.name, rule.outcome, f"{step}: {why}"))
    stops = [m for m in matches if m.outcome in _STOPS]
    stops.sort(key=lambda m: (m.outcome != PolicyOutcome.BLOCKED, m.rule_name))
    if stops:
        return StepVerdict(stops[0], [])
    approvals = sorted((m for m in matches if m.outcome == PolicyOutcome.REQUIRE_APPROVAL),
                       key=lambda m: m.rule_name)  # fmt: skip
    warnings = [m for m in matches if m.outcome == PolicyOutcome.WARNED]
    return StepVerdict(None, warnings, approvals[0] if approvals else None)


def step_digest(
    *, run_id: str, index: int, skill: str, input: dict[str, Any], policy_version: int
) -> str:
    """What an approval is bound to: this step of this run, its skill and canonical input,
    and the policy version it was judged under (sha256, hex)."""
    content = {"run_id": run_id, "step_index": index, "skill": skill, "input": input,
               "policy_version": policy_version}  # fmt: skip
    return hashlib.sha256(canonical_json(content).encode("ascii")).hexdigest()


def _match_before(rule: Rule, facts: StepFacts) -> str | None:
    if rule.kind == RuleKind.MAX_COST:
        limit = Decimal(str(rule.params["max"]))
        if facts.projected > limit:
            return f"projected cost {facts.projected} > {limit}"
    elif rule.kind == RuleKind.MAX_STEPS:
        limit = Decimal(str(rule.params["max"]))
        if facts.index + 1 > limit:
            return f"step {facts.index + 1} of at most {limit}"
    elif rule.kind == RuleKind.SKILL_USED and rule.params["skill"] == facts.skill:
        return f"skill {facts.skill!r} is used"
    return None
