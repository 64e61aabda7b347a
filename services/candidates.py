"""The candidates domain: storing a submitted candidate, reading one with its tenant's
promotion limits, and the status a decision leaves it in (services.promotions).

A candidate's facts never change: the same submission twice stores it once, different
content under the same id is refused. The one writer of ``candidates``.
"""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Candidate
from db.queries.promotion_limits import promotion_limits
from domain.candidates import (
    CandidateFacts,
    CandidateLookup,
    CandidateSnapshot,
    CandidateStatus,
    CandidateSubmission,
    PromotionDecision,
)
from domain.promotion import context_hash
from services.errors import CandidateRequestError
from services.ledger import utcnow


def snapshot(row: Candidate) -> CandidateSnapshot:
    return CandidateSnapshot(
        candidate_id=row.id,
        tenant_id=row.tenant_id,
        correlation_rule_id=row.correlation_rule_id,
        correlation_rule_version=row.correlation_rule_version,
        signal_count=row.signal_count,
        severity=row.severity,
        service=row.service,
        source_run_id=row.source_run_id,
        metadata=row.meta,
        status=row.status,
        created_at=row.created_at,
    )


def load_candidate(
    sessions: sessionmaker[Session], candidate_id: str, default_max_signal_count: int
) -> CandidateLookup:
    """The candidate and, read with it, its tenant's promotion limits (the workflow holds
    the candidate to them before the engine decides)."""
    with sessions() as session:
        row = session.get(Candidate, candidate_id)
        if row is None:
            return CandidateLookup(candidate=None)
        limits = promotion_limits(session, row.tenant_id, default_max_signal_count)
        return CandidateLookup(candidate=snapshot(row), limits=limits)


def store_candidate(sessions: sessionmaker[Session], submission: CandidateSubmission) -> bool:
    """Insert the candidate; False if the same one exists. Different content is refused."""
    facts = submission.facts()
    digest = context_hash(facts)
    try:
        with sessions.begin() as session:
            if _known(session, facts.candidate_id, digest):
                return False
            session.add(_row(submission, facts, digest))
        return True
    except IntegrityError:  # the same event, delivered twice at once: the first one won
        with sessions() as session:
            if _known(session, facts.candidate_id, digest):
                return False
        raise


def mark_decided(session: Session, candidate: Candidate, decision: PromotionDecision,
                 status: CandidateStatus) -> None:  # fmt: skip
    """The status a decision leaves the candidate in, in the decision's transaction."""
    candidate.status = status
    candidate.decision_id = decision.decision_id
    candidate.incident_id = decision.incident_id
    candidate.updated_at = utcnow()


def _known(session: Session, candidate_id: str, digest: str) -> bool:
    existing = session.get(Candidate, candidate_id)
    if existing is not None and existing.content_hash != digest:
        raise CandidateRequestError(
            f"candidate {candidate_id!r} already exists with different content; "
            "a candidate's facts never change"
        )
    return existing is not None


def _row(submission: CandidateSubmission, facts: CandidateFacts, digest: str) -> Candidate:
    now = utcnow()
    return Candidate(
        id=facts.candidate_id,
        tenant_id=facts.tenant_id,
        correlation_rule_id=facts.correlation_rule_id,
        correlation_rule_version=facts.correlation_rule_version,
        signal_count=facts.signal_count,
        severity=facts.severity,
        service=facts.service,
        source_run_id=facts.source_run_id,
        meta=facts.metadata,
        content_hash=digest,
        status=CandidateStatus.PENDING,
        created_at=submission.created_at or now,
        submitted_at=now,
        updated_at=now,
    )
