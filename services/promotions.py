"""Promotion decisions of candidates: apply a decision, log each orchestration attempt,
purge the log.

``apply_decision`` writes the decision, the candidate's new status and (for PROMOTE) the
one incident in ONE transaction; the ids come from the engine, so a retry, a duplicate
execution or a replay finds what the first one wrote and creates nothing new. Events
and the orchestration log are fire-and-forget: each is written in its own savepoint and
a failure is logged, never raised. The one writer of ``promotion_decisions`` and
``candidate_orchestration_log``.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from db.models import Candidate, OrchestrationAttempt, PromotionDecisionRecord
from db.models.candidates import ORCHESTRATION_LOG_RETENTION
from domain.candidates import (
    FINAL_STATUSES,
    ApplyDecisionRequest,
    AuthorityContext,
    CandidateStatus,
    Decision,
    FailureRequest,
    PromotionResult,
    decision_event,
    failure_event,
)
from domain.ids import derive_id
from domain.messages import Done
from services import events
from services.candidates import mark_decided
from services.errors import Rejected
from services.incidents import create_for_candidate
from services.ledger import Execution, audit_entry, run_once, utcnow

log = logging.getLogger(__name__)

STATUS_AFTER = {
    Decision.PROMOTE: CandidateStatus.PROMOTED,
    Decision.DEFER: CandidateStatus.DEFERRED,
    Decision.SUPPRESS: CandidateStatus.SUPPRESSED,
}


def result_from_record(row: PromotionDecisionRecord) -> PromotionResult:
    return PromotionResult(
        candidate_id=row.candidate_id,
        decision=row.decision,
        decision_id=row.id,
        reason=row.reason,
        policy_id=row.policy_id,
        policy_version=row.policy_version,
        authority=AuthorityContext(
            authority_type=row.authority_type,
            authority_id=row.authority_id,
            session_id=row.session_id,
            justification=row.justification,
        ),
        incident_id=row.incident_id,
    )


def attempt_id(execution: Execution) -> str:
    """One orchestration-log row per workflow execution (a retry reuses the id)."""
    return derive_id("orchestration-attempt", execution.workflow_id, execution.run_id)


def quietly(session: Session, what: str, write: Callable[[], None]) -> bool:
    """Fire-and-forget: ``write`` in a savepoint; a failure is logged and swallowed."""
    try:
        with session.begin_nested():
            write()
        return True
    except Exception:
        log.warning("%s failed; the orchestration goes on without it", what, exc_info=True)
        return False


def apply_decision(
    sessions: sessionmaker[Session], execution: Execution, req: ApplyDecisionRequest
) -> PromotionResult:
    """Record the decision; PROMOTE also creates the candidate's one incident."""
    d = req.decision

    def write(session: Session) -> PromotionResult:
        stored = session.get(PromotionDecisionRecord, d.decision_id)
        if stored is not None:  # a duplicate execution: the first one's decision stands
            return result_from_record(stored)
        candidate = session.get(Candidate, d.candidate_id, with_for_update=True)
        if candidate is None:
            raise Rejected(f"unknown candidate {d.candidate_id!r}", type="UnknownCandidate")
        if candidate.status in FINAL_STATUSES:
            raise Rejected(
                f"candidate {d.candidate_id!r} is already {candidate.status} (decision "
                f"{candidate.decision_id}, incident {candidate.incident_id}); "
                f"refusing a second decision ({d.decision})",
                type="CandidateAlreadyDecided",
            )
        if d.decision == Decision.PROMOTE:
            create_for_candidate(session, req)
        session.add(_decision_row(req, candidate.tenant_id, execution))
        mark_decided(session, candidate, d, STATUS_AFTER[d.decision])
        _audit(session, req)
        session.flush()  # the authoritative rows must hold before the optional ones
        result = PromotionResult.model_validate(d.model_dump(exclude={"context_hash"}))
        topic, payload = decision_event(req.candidate, d, req.decided_at)
        quietly(session, f"{payload['event_type']} event", lambda: events.emit(
            session, key=d.decision_id, topic=topic, tenant_id=req.candidate.tenant_id,
            run_id=req.candidate.source_run_id, payload=payload))  # fmt: skip
        quietly(session, "orchestration log", lambda: _log_success(session, req, execution))
        return result

    # The decision id is derived from everything the decision depends on, so every
    # execution of candidate-<id> shares its result (a re-submission after the first
    # execution closed finds it instead of writing a second decision).
    return run_once(
        sessions, execution.shared(), f"candidates.apply:{d.decision_id}", PromotionResult, write
    )


def record_failure(
    sessions: sessionmaker[Session], execution: Execution, req: FailureRequest
) -> Done:
    """An orchestration failed closed: log it and announce it, never fail doing so."""
    try:
        with sessions.begin() as session:
            topic, payload = failure_event(req)
            quietly(session, "OrchestrationFailed event", lambda: events.emit(
                session, key=attempt_id(execution), topic=topic,
                tenant_id=req.tenant_id or "unknown", run_id=None, payload=payload))  # fmt: skip
            quietly(session, "orchestration log", lambda: _log_failure(session, req, execution))
    except Exception:
        log.warning("recording the failure of candidate %s failed", req.candidate_id,
                    exc_info=True)  # fmt: skip
    return Done()


def purge_orchestration_log(sessions: sessionmaker[Session]) -> int:
    """Delete orchestration-log rows whose expiry passed; returns how many."""
    with sessions.begin() as session:
        result = session.execute(
            delete(OrchestrationAttempt).where(OrchestrationAttempt.expires_at < utcnow())
        )
        return result.rowcount or 0


# ----- the rows -------------------------------------------------------------------------


def _decision_row(
    req: ApplyDecisionRequest, tenant_id: str, execution: Execution
) -> PromotionDecisionRecord:
    d = req.decision
    return PromotionDecisionRecord(
        id=d.decision_id,
        candidate_id=d.candidate_id,
        tenant_id=tenant_id,
        decision=d.decision,
        reason=d.reason,
        policy_id=d.policy_id,
        policy_version=d.policy_version,
        authority_type=d.authority.authority_type,
        authority_id=d.authority.authority_id,
        session_id=d.authority.session_id,
        justification=d.authority.justification,
        context_hash=d.context_hash,
        incident_id=d.incident_id,
        workflow_id=execution.workflow_id,
        workflow_run_id=execution.run_id,
        decided_at=req.decided_at,
    )


def _audit(session: Session, req: ApplyDecisionRequest) -> None:
    c, d = req.candidate, req.decision
    audit_entry(
        session,
        key=f"promotion/{d.decision_id}",
        tenant_id=c.tenant_id,
        event_type=f"CANDIDATE_{d.decision}",
        entity_type="incident" if d.incident_id else "candidate",
        entity_id=d.incident_id or c.candidate_id,
        after_state={
            "run_id": c.source_run_id,
            "candidate_id": c.candidate_id,
            "decision": d.decision,
            "decision_id": d.decision_id,
            "incident_id": d.incident_id,
            "policy_id": d.policy_id,
            "policy_version": d.policy_version,
            "reason": d.reason,
            "justification": d.authority.justification,
        },
        actor_id=d.authority.authority_id,
        actor_authority=d.authority.authority_type,
        source="candidate-orchestrator",
    )


def _log_success(session: Session, req: ApplyDecisionRequest, execution: Execution) -> None:
    d, now = req.decision, utcnow()
    _add_attempt(session, execution, d.candidate_id, d.authority, now, req.started_at,
                 policy_id=d.policy_id, policy_version=d.policy_version, decision=d.decision,
                 decision_id=d.decision_id, incident_id=d.incident_id, reason=d.reason,
                 status="success", error=None)  # fmt: skip


def _log_failure(session: Session, req: FailureRequest, execution: Execution) -> None:
    _add_attempt(session, execution, req.candidate_id, req.authority, utcnow(), req.started_at,
                 policy_id=req.policy_id, policy_version=req.policy_version, decision=None,
                 decision_id=None, incident_id=None, reason=None, status="error",
                 error=f"{req.error_type}: {req.error}")  # fmt: skip


def _add_attempt(session: Session, execution: Execution, candidate_id: str,
                 authority: AuthorityContext, now: datetime, started_at: datetime,
                 **fields: object) -> None:  # fmt: skip
    session.add(
        OrchestrationAttempt(
            id=attempt_id(execution),
            candidate_id=candidate_id,
            workflow_id=execution.workflow_id,
            workflow_run_id=execution.run_id,
            authority_type=authority.authority_type,
            authority_id=authority.authority_id,
            started_at=started_at,
            completed_at=now,
            duration_ms=max(0, int((now - started_at).total_seconds() * 1000)),
            written_at=now,
            expires_at=now + ORCHESTRATION_LOG_RETENTION,
            **fields,
        )
    )
