"""Candidates facade: load a candidate, apply a promotion decision, log, purge the log
(services.candidates, services.promotions).

``load`` returns the candidate with its tenant's promotion limits, read in one
transaction: the workflow fails a candidate outside them closed, however the workflow
was started. ``apply_decision`` writes the decision, the candidate's new status and (for
PROMOTE) its one incident in one transaction, shared by every execution of the workflow.
"""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution, rejections_not_retried
from domain.candidates import (
    DEFAULT_MAX_SIGNAL_COUNT,
    ApplyDecisionRequest,
    CandidateLookup,
    FailureRequest,
    PromotionResult,
)
from domain.messages import Done
from services import candidates, promotions


class CandidateActivities:
    """Writes (and the one read) of the candidates domain."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        default_max_signal_count: int = DEFAULT_MAX_SIGNAL_COUNT,
    ) -> None:
        self.sessions = sessions
        self.default_max_signal_count = default_max_signal_count

    @activity.defn(name="candidates.load")
    def load(self, candidate_id: str) -> CandidateLookup:
        """The candidate and, read with it, its tenant's promotion limits (the workflow
        holds the candidate to them before the engine decides)."""
        return candidates.load_candidate(self.sessions, candidate_id,
                                         self.default_max_signal_count)  # fmt: skip

    @activity.defn(name="candidates.apply_decision")
    def apply_decision(self, req: ApplyDecisionRequest) -> PromotionResult:
        """Record the decision; PROMOTE also creates the candidate's one incident. An
        unknown or already decided candidate is refused, not retried."""
        with rejections_not_retried():
            return promotions.apply_decision(self.sessions, current_execution(), req)

    @activity.defn(name="candidates.record_failure")
    def record_failure(self, req: FailureRequest) -> Done:
        """An orchestration failed closed: log it and announce it, never fail doing so."""
        return promotions.record_failure(self.sessions, current_execution(), req)

    @activity.defn(name="candidates.purge_orchestration_log")
    def purge_orchestration_log(self) -> int:
        """Delete orchestration-log rows whose expiry passed; returns how many."""
        return promotions.purge_orchestration_log(self.sessions)
