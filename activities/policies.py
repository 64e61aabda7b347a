"""Policies facade: the post-execution evaluation and its compensation."""

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.ledger import ack, audit_entry, insert_row, insert_rows, run_once, utcnow
from activities.runs import commit_transition
from db.models import LimitBreach, PolicyEvaluation, PolicyRule, PreventionRecord
from domain import contract
from domain.enums import AckStatus, RecordStatus, RuleKind
from domain.ids import derive_id
from domain.messages import Done, EvaluateRequest, EvaluationResult, RollbackRequest
from domain.policy_rules import Rule, evaluate


def evaluation_id_for(run_id: str) -> str:
    return derive_id(run_id, "policy-evaluation")


def enabled_rules(session: Session, tenant_id: str) -> list[Rule]:
    rows = session.scalars(
        select(PolicyRule)
        .where(PolicyRule.tenant_id == tenant_id, PolicyRule.enabled.is_(True))
        .order_by(PolicyRule.name)
    )
    return [Rule(r.id, r.name, RuleKind(r.kind), r.params, r.outcome) for r in rows]


class PolicyActivities:
    """Writes of the policies domain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="policies.evaluate")
    def evaluate(self, req: EvaluateRequest) -> EvaluationResult:
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
                {
                    "id": derive_id(facts.run_id, "prevention", i),
                    "rule_id": match.rule_id,
                    "rule_name": match.rule_name,
                    "outcome": match.outcome,
                    "reason": match.reason,
                    **owner,
                }
                for i, match in enumerate(found.matches)
            ]
            breaches = [
                {
                    "id": derive_id(facts.run_id, "limit-breach", i),
                    "limit_type": breach.limit_type,
                    "value": breach.value,
                    "threshold": breach.threshold,
                    **owner,
                }
                for i, breach in enumerate(found.breaches)
            ]
            insert_rows(session, PreventionRecord, records)
            insert_rows(session, LimitBreach, breaches)
            record_ids = [r["id"] for r in records]
            breach_ids = [b["id"] for b in breaches]
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
                prevention_record_ids=record_ids,
                limit_breach_ids=breach_ids,
            )

        return run_once(
            self.sessions,
            "policies.evaluate",
            EvaluationResult,
            write,
            tenant_id=req.facts.tenant_id,
        )

    @activity.defn(name="policies.rollback_evaluation")
    def rollback_evaluation(self, req: RollbackRequest) -> None:
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
                after_state={
                    "run_id": req.run_id,
                    "status": RecordStatus.ROLLED_BACK,
                    "reason": req.reason,
                },
            )
            return Done()

        run_once(
            self.sessions, "policies.rollback_evaluation", Done, write, tenant_id=req.tenant_id
        )
