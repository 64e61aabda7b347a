"""Candidates facade: load a candidate, apply a promotion decision, log, purge the log.

``load`` returns the candidate with its tenant's promotion limits (the policies it may
name, the signal_count bound), read in one transaction: the workflow fails a candidate
outside them closed, however the workflow was started.

``apply_decision`` writes the decision, the candidate's new status and (for PROMOTE) the
one incident in ONE transaction; the ids come from the engine, so a retry, a duplicate
execution or a replay finds what the first one wrote and creates nothing new. Events
and the orchestration log are fire-and-forget: each is written in its own savepoint and
a failure is logged, never raised.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import events
from activities.ledger import audit_entry, run_once, utcnow
from db.models import Candidate, Incident, OrchestrationAttempt, PromotionDecisionRecord
from db.models.candidates import ORCHESTRATION_LOG_RETENTION
from db.queries.promotion_limits import promotion_limits
from domain.candidates import (
    DEFAULT_MAX_SIGNAL_COUNT,
    FINAL_STATUSES,
    ApplyDecisionRequest,
    AuthorityContext,
    CandidateLookup,
    CandidateSnapshot,
    CandidateStatus,
    Decision,
    FailureRequest,
    PromotionResult,
    decision_event,
    failure_event,
)
from domain.enums import IncidentCategory
from domain.ids import derive_id
from domain.messages import Done

log = logging.getLogger(__name__)

STATUS_AFTER = {
    Decision.PROMOTE: CandidateStatus.PROMOTED,
    Decision.DEFER: CandidateStatus.DEFERRED,
    Decision.SUPPRESS: CandidateStatus.SUPPRESSED,
}


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


def attempt_id() -> str:
    """One orchestration-log row per workflow execution (a retry reuses the id)."""
    info = activity.info()
    return derive_id("orchestration-attempt", info.workflow_id, info.workflow_run_id)


def quietly(session: Session, what: str, write: Callable[[], None]) -> bool:
    """Fire-and-forget: ``write`` in a savepoint; a failure is logged and swallowed."""
    try:
        with session.begin_nested():
            write()
        return True
    except Exception:
        log.warning("%s failed; the orchestration goes on without it", what, exc_info=True)
        return False


def _duration_ms(started: datetime, completed: datetime) -> int:
    return max(0, int((completed - started).total_seconds() * 1000))


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
        with self.sessions() as session:
            row = session.get(Candidate, candidate_id)
            if row is None:
                return CandidateLookup(candidate=None)
            limits = promotion_limits(session, row.tenant_id, self.default_max_signal_count)
            return CandidateLookup(candidate=snapshot(row), limits=limits)

    @activity.defn(name="candidates.apply_decision")
    def apply_decision(self, req: ApplyDecisionRequest) -> PromotionResult:
        """Record the decision; PROMOTE also creates the candidate's one incident."""
        d = req.decision

        def write(session: Session) -> PromotionResult:
            stored = session.get(PromotionDecisionRecord, d.decision_id)
            if stored is not None:  # a duplicate execution: the first one's decision stands
                return result_from_record(stored)
            candidate = session.get(Candidate, d.candidate_id, with_for_update=True)
            if candidate is None:
                raise ApplicationError(
                    f"unknown candidate {d.candidate_id!r}", type="UnknownCandidate",
                    non_retryable=True,
                )  # fmt: skip
            if candidate.status in FINAL_STATUSES:
                raise ApplicationError(
                    f"candidate {d.candidate_id!r} is already {candidate.status} (decision "
                    f"{candidate.decision_id}, incident {candidate.incident_id}); "
                    f"refusing a second decision ({d.decision})",
                    type="CandidateAlreadyDecided",
                    non_retryable=True,
                )
            if d.decision == Decision.PROMOTE and session.get(Incident, d.incident_id) is None:
                session.add(self._incident(req))
            info = activity.info()
            session.add(
                PromotionDecisionRecord(
                    id=d.decision_id,
                    candidate_id=d.candidate_id,
                    tenant_id=candidate.tenant_id,
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
                    workflow_id=info.workflow_id or "",
                    workflow_run_id=info.workflow_run_id or "",
                    decided_at=req.decided_at,
                )
            )
            candidate.status = STATUS_AFTER[d.decision]
            candidate.decision_id = d.decision_id
            candidate.incident_id = d.incident_id
            candidate.updated_at = utcnow()
            self._audit(session, req)
            session.flush()  # the authoritative rows must hold before the optional ones
            result = PromotionResult.model_validate(d.model_dump(exclude={"context_hash"}))
            topic, payload = decision_event(req.candidate, d, req.decided_at)
            quietly(session, f"{payload['event_type']} event", lambda: events.emit(
                session, key=d.decision_id, topic=topic, tenant_id=req.candidate.tenant_id,
                run_id=req.candidate.source_run_id, payload=payload))  # fmt: skip
            quietly(session, "orchestration log", lambda: self._log_success(session, req))
            return result

        # The decision id is derived from everything the decision depends on, so every
        # execution of candidate-<id> shares its result (a re-submission after the first
        # execution closed finds it instead of writing a second decision).
        return run_once(
            self.sessions,
            f"candidates.apply:{d.decision_id}",
            PromotionResult,
            write,
            per_execution=False,
        )

    @activity.defn(name="candidates.record_failure")
    def record_failure(self, req: FailureRequest) -> Done:
        """An orchestration failed closed: log it and announce it, never fail doing so."""
        try:
            with self.sessions.begin() as session:
                topic, payload = failure_event(req)
                quietly(session, "OrchestrationFailed event", lambda: events.emit(
                    session, key=attempt_id(), topic=topic, tenant_id=req.tenant_id or "unknown",
                    run_id=None, payload=payload))  # fmt: skip
                quietly(session, "orchestration log", lambda: self._log_failure(session, req))
        except Exception:
            log.warning("recording the failure of candidate %s failed", req.candidate_id,
                        exc_info=True)  # fmt: skip
        return Done()

    @activity.defn(name="candidates.purge_orchestration_log")
    def purge_orchestration_log(self) -> int:
        """Delete orchestration-log rows whose expiry passed; returns how many."""
        with self.sessions.begin() as session:
            result = session.execute(
                delete(OrchestrationAttempt).where(OrchestrationAttempt.expires_at < utcnow())
            )
            return result.rowcount or 0

    # ----- the rows -------------------------------------------------------------------

    @staticmethod
    def _incident(req: ApplyDecisionRequest) -> Incident:
        c, d = req.candidate, req.decision
        return Incident(
            id=d.incident_id,
            tenant_id=c.tenant_id,
            source_run_id=c.source_run_id,
            category=IncidentCategory.CANDIDATE_PROMOTION,
            severity=c.severity,
            title=f"Candidate {c.candidate_id} promoted: {c.severity} on {c.service}"[:300],
            description=d.reason,
            status="OPEN",
            details={
                "candidate_id": c.candidate_id,
                "decision_id": d.decision_id,
                "policy_id": d.policy_id,
                "policy_version": d.policy_version,
                "authority": d.authority.model_dump(mode="json"),
                "correlation_rule_id": c.correlation_rule_id,
                "correlation_rule_version": c.correlation_rule_version,
                "signal_count": c.signal_count,
                "service": c.service,
                "context_hash": d.context_hash,
            },
            created_at=req.decided_at,
        )

    @staticmethod
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

    @staticmethod
    def _log_success(session: Session, req: ApplyDecisionRequest) -> None:
        d, now = req.decision, utcnow()
        _add_attempt(session, d.candidate_id, d.authority, now, req.started_at,
                     policy_id=d.policy_id, policy_version=d.policy_version, decision=d.decision,
                     decision_id=d.decision_id, incident_id=d.incident_id, reason=d.reason,
                     status="success", error=None)  # fmt: skip

    @staticmethod
    def _log_failure(session: Session, req: FailureRequest) -> None:
        _add_attempt(session, req.candidate_id, req.authority, utcnow(), req.started_at,
                     policy_id=req.policy_id, policy_version=req.policy_version, decision=None,
                     decision_id=None, incident_id=None, reason=None, status="error",
                     error=f"{req.error_type}: {req.error}")  # fmt: skip


def _add_attempt(session: Session, candidate_id: str, authority: AuthorityContext,
                 now: datetime, started_at: datetime, **fields: object) -> None:  # fmt: skip
    info = activity.info()
    session.add(
        OrchestrationAttempt(
            id=attempt_id(),
            candidate_id=candidate_id,
            workflow_id=info.workflow_id or "",
            workflow_run_id=info.workflow_run_id or "",
            authority_type=authority.authority_type,
            authority_id=authority.authority_id,
            started_at=started_at,
            completed_at=now,
            duration_ms=_duration_ms(started_at, now),
            written_at=now,
            expires_at=now + ORCHESTRATION_LOG_RETENTION,
            **fields,
        )
    )
