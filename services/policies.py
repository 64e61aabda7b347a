"""The policies domain: the judgement before each step (rules and budget, recorded with the
step), the post-execution evaluation and its compensation, and the record of every policy
check (control.check_policy, or runs.open for the check before step 0, which the
authorization's reading of the live state answers).

The one writer of ``policy_evaluations``, ``prevention_records``, ``limit_breaches`` and
``policy_checks`` (the rules themselves are the operator's: services.rules).
"""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    LimitBreach,
    PolicyCheck,
    PolicyEvaluation,
    PolicyRule,
    PreventionRecord,
    Tenant,
)
from domain import contract
from domain.control import effective_budget
from domain.enums import (
    AckStatus,
    PolicyDecision,
    PolicyOutcome,
    RecordStatus,
    RuleKind,
    ViolationType,
)
from domain.ids import derive_id
from domain.messages import (
    Done,
    EvaluateRequest,
    EvaluationResult,
    RollbackRequest,
    StepPrevention,
    StepRequest,
)
from domain.models import AwaitedApproval
from domain.policy_rules import (
    Match,
    Rule,
    StepFacts,
    StepVerdict,
    evaluate,
    judge_step,
    step_digest,
)
from services.ledger import (
    Execution,
    ack,
    audit_entry,
    execute_core,
    insert_row,
    insert_rows,
    run_once,
    utcnow,
)
from services.runs import commit_transition


def evaluation_id_for(run_id: str) -> str:
    return derive_id(run_id, "policy-evaluation")


def enabled_rules(session: Session, tenant_id: str) -> list[Rule]:
    rows = session.scalars(
        select(PolicyRule)
        .where(PolicyRule.tenant_id == tenant_id, PolicyRule.enabled.is_(True))
        .order_by(PolicyRule.name)
    )
    return [Rule(r.id, r.name, RuleKind(r.kind), r.params, r.outcome) for r in rows]


# ----- before a step ------------------------------------------------------------------------

_BUDGET_LIMIT = select(Tenant.__table__.c.budget_limit).where(
    Tenant.__table__.c.id == bindparam("tenant_id")
)


def judge_before_step(session: Session, req: StepRequest, reserved: Decimal) -> StepVerdict:
    """The tenant's enabled rules and its live budget limit, read now, judged for the step
    about to run (domain.policy_rules.judge_step); writes nothing."""
    limit = execute_core(session, _BUDGET_LIMIT, {"tenant_id": req.tenant_id}).scalar()
    facts = StepFacts(
        index=req.index,
        skill=req.skill,
        cost_so_far=req.cost_so_far,
        reserved=reserved,
        budget=effective_budget(req.budget, limit),
    )
    return judge_step(facts, enabled_rules(session, req.tenant_id))


def awaited_approval(session: Session, req: StepRequest, match: Match) -> AwaitedApproval:
    """What an approval of this step must name: its digest under the tenant's current
    policy version (a rule change in between asks again)."""
    version = rule_state(session, req.tenant_id).policy_version
    digest = step_digest(run_id=req.run_id, index=req.index, skill=req.skill, input=req.input,
                         policy_version=version)  # fmt: skip
    return AwaitedApproval(step_index=req.index, skill=req.skill, rule_name=match.rule_name,
                           reason=match.reason, policy_version=version, digest=digest)  # fmt: skip


def approved(verdict: StepVerdict, awaited: AwaitedApproval) -> StepVerdict:
    """The judgement of an approved step: it runs, and the approval is recorded with it."""
    assert verdict.approval is not None
    record = Match(verdict.approval.rule_id, verdict.approval.rule_name,
                   PolicyOutcome.REQUIRE_APPROVAL,
                   f"{verdict.approval.reason}; approved (digest {awaited.digest})")  # fmt: skip
    return StepVerdict(None, [*verdict.warnings, record])


def prevention_of(match: Match) -> StepPrevention:
    return StepPrevention(rule_id=match.rule_id, rule_name=match.rule_name,
                          outcome=match.outcome, reason=match.reason)  # fmt: skip


def record_step_judgement(session: Session, req: StepRequest, verdict: StepVerdict) -> None:
    """A prevention record (with the step's index, of no evaluation) per rule that matched
    the step, and for a stopped step a STEP_PREVENTED audit entry: in the caller's
    transaction, the one recording the step's result."""
    matches = ([verdict.prevented] if verdict.prevented else []) + verdict.warnings
    now = utcnow()
    insert_rows(session, PreventionRecord, [
        {"id": derive_id(req.run_id, "step-prevention", req.index, i), "evaluation_id": None,
         "step_index": req.index, "run_id": req.run_id, "tenant_id": req.tenant_id,
         "rule_id": m.rule_id, "rule_name": m.rule_name, "outcome": m.outcome,
         "reason": m.reason, "created_at": now}
        for i, m in enumerate(matches)
    ])  # fmt: skip
    if verdict.prevented is not None:
        audit_entry(
            session,
            key=f"{req.run_id}/step-prevented/{req.index}",
            tenant_id=req.tenant_id,
            event_type="STEP_PREVENTED",
            entity_type="run",
            entity_id=req.run_id,
            after_state={"run_id": req.run_id, "step_index": req.index, "skill": req.skill,
                         **prevention_of(verdict.prevented).model_dump(mode="json")},
        )  # fmt: skip


def evaluate_run(
    sessions: sessionmaker[Session], execution: Execution, req: EvaluateRequest
) -> EvaluationResult:
    """One evaluation row, a prevention record per match, a breach per limit passed;
    ``req.enter`` (GOVERNANCE_CHECK) commits with them."""
    facts = req.facts

    def write(session: Session) -> EvaluationResult:
        now = utcnow()
        if req.enter is not None:
            commit_transition(session, req.enter)
        found = evaluate(
            cost=facts.cost,
            steps_done=facts.steps_done,
            skills_used=facts.skills_used,
            budget=facts.budget,
            violations=facts.violations,
            rules=enabled_rules(session, facts.tenant_id),
        )
        evaluation_id = evaluation_id_for(facts.run_id)
        insert_row(
            session,
            PolicyEvaluation,
            id=evaluation_id,
            run_id=facts.run_id,
            tenant_id=facts.tenant_id,
            outcome=found.outcome,
            facts=facts.model_dump(mode="json"),
            created_at=now,
        )
        owner = {
            "evaluation_id": evaluation_id,
            "run_id": facts.run_id,
            "tenant_id": facts.tenant_id,
            "created_at": now,
        }
        records = [
            {"id": derive_id(facts.run_id, "prevention", i), "rule_id": match.rule_id,
             "rule_name": match.rule_name, "outcome": match.outcome, "reason": match.reason,
             **owner}
            for i, match in enumerate(found.matches)
        ]  # fmt: skip
        breaches = [
            {"id": derive_id(facts.run_id, "limit-breach", i), "limit_type": breach.limit_type,
             "value": breach.value, "threshold": breach.threshold, **owner}
            for i, breach in enumerate(found.breaches)
        ]  # fmt: skip
        insert_rows(session, PreventionRecord, records)
        insert_rows(session, LimitBreach, breaches)
        ack(
            session,
            run_id=facts.run_id,
            tenant_id=facts.tenant_id,
            domain=contract.EVALUATE_POLICY[0],
            action=contract.EVALUATE_POLICY[1],
            result_id=evaluation_id,
            details={"outcome": found.outcome},
        )
        return EvaluationResult(
            evaluation_id=evaluation_id,
            outcome=found.outcome,
            prevention_record_ids=[r["id"] for r in records],
            limit_breach_ids=[b["id"] for b in breaches],
        )

    return run_once(
        sessions, execution, "policies.evaluate", EvaluationResult, write,
        tenant_id=facts.tenant_id,
    )  # fmt: skip


def rollback_evaluation(
    sessions: sessionmaker[Session], execution: Execution, req: RollbackRequest
) -> None:
    """Compensation: mark the evaluation, its records and breaches ROLLED_BACK."""

    def write(session: Session) -> Done:
        evaluation = session.get(PolicyEvaluation, evaluation_id_for(req.run_id))
        if evaluation is None or evaluation.status == RecordStatus.ROLLED_BACK:
            return Done()
        now = utcnow()
        evaluation.status = RecordStatus.ROLLED_BACK
        evaluation.rolled_back_at = now
        evaluation.rollback_reason = req.reason
        for model in (PreventionRecord, LimitBreach):
            session.execute(
                update(model)
                .where(model.evaluation_id == evaluation.id)
                .values(status=RecordStatus.ROLLED_BACK, rolled_back_at=now)
            )
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=contract.EVALUATE_POLICY[0],
            action=contract.EVALUATE_POLICY[1],
            result_id=evaluation.id,
            status=AckStatus.ROLLED_BACK,
            rollback_reason=req.reason,
        )
        audit_entry(
            session,
            key=f"{req.run_id}/rollback/policy-evaluation",
            tenant_id=req.tenant_id,
            event_type="ROLLBACK",
            entity_type="policy_evaluation",
            entity_id=evaluation.id,
            before_state={"run_id": req.run_id, "status": RecordStatus.COMMITTED},
            after_state={"run_id": req.run_id, "status": RecordStatus.ROLLED_BACK,
                         "reason": req.reason},
        )  # fmt: skip
        return Done()

    run_once(
        sessions, execution, "policies.rollback_evaluation", Done, write, tenant_id=req.tenant_id
    )


# ----- policy checks ----------------------------------------------------------------------

_RULES = PolicyRule.__table__
_TENANT_RULES = select(_RULES.c.id, _RULES.c.version, _RULES.c.enabled).where(
    _RULES.c.tenant_id == bindparam("tenant_id")
)


@dataclass(frozen=True)
class RuleState:
    policy_version: int  # sum of the tenant's rule versions: any change or toggle moves it
    enabled_rule_ids: list[str]  # sorted


def rule_state(session: Session, tenant_id: str) -> RuleState:
    """The tenant's policy version and enabled rules, in one read."""
    rules = execute_core(session, _TENANT_RULES, {"tenant_id": tenant_id}).all()
    return RuleState(
        policy_version=sum(rule.version for rule in rules),
        enabled_rule_ids=sorted(rule.id for rule in rules if rule.enabled),
    )


def record_policy_check(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    step_index: int,
    decision: PolicyDecision,
    violations: list[ViolationType],
    cost: Decimal,
) -> None:
    """One check's row, in the caller's transaction."""
    insert_row(
        session,
        PolicyCheck,
        id=derive_id(run_id, "policy-check", step_index),
        run_id=run_id,
        tenant_id=tenant_id,
        step_index=step_index,
        decision=decision,
        violations=list(violations),
        cost_so_far=cost,
        checked_at=utcnow(),
    )
