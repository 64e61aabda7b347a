"""Policies facade: the post-execution evaluation and its compensation (the writes:
services.policies)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution
from domain.messages import EvaluateRequest, EvaluationResult, RollbackRequest
from services import policies


class PolicyActivities:
    """Writes of the policies domain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="policies.evaluate")
    def evaluate(self, req: EvaluateRequest) -> EvaluationResult:
        """One evaluation row, a prevention record per match, a breach per limit passed;
        ``req.enter`` (GOVERNANCE_CHECK) commits with them."""
        return policies.evaluate_run(self.sessions, current_execution(), req)

    @activity.defn(name="policies.rollback_evaluation")
    def rollback_evaluation(self, req: RollbackRequest) -> None:
        """Compensation: mark the evaluation, its records and breaches ROLLED_BACK."""
        policies.rollback_evaluation(self.sessions, current_execution(), req)
