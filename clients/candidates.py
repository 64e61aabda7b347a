"""Submitting candidates and promoting deferred ones through Temporal (CLI and API share it).

``submit_candidate`` is the CandidateCreated handler: validate, store the candidate
(services.candidates), start
``PromoteCandidateWorkflow`` with id ``candidate-<id>``. A duplicate event joins the
execution that already exists (running: USE_EXISTING; ended: the id is not reused unless
that execution failed), so a candidate is never processed twice in parallel. A candidate
outside its tenant's promotion limits (a policy the tenant may not name, a signal_count
above its bound) is refused before anything is written or started.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import Candidate, OrchestrationAttempt, PromotionDecisionRecord
from db.queries.promotion_limits import promotion_limits
from domain.candidates import (
    DEFAULT_MAX_SIGNAL_COUNT,
    AuthorityContext,
    CandidateFacts,
    CandidateStatus,
    CandidateSubmission,
    PromotionResult,
    candidate_workflow_id,
    human_authority_type,
)
from domain.promotion import PromotionError, check_candidate_limits
from domain.validation_errors import describe
from services.candidates import store_candidate
from services.errors import CandidateRequestError

WORKFLOW_TYPE = "PromoteCandidateWorkflow"


class CandidateLimitError(CandidateRequestError):
    """A candidate outside its tenant's promotion limits; ``field`` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Submitted(BaseModel):
    candidate_id: str
    workflow_id: str
    run_id: str | None
    duplicate: bool


class CandidateView(BaseModel):
    """A candidate, its decisions and (debug only) its orchestration-log rows."""

    candidate_id: str
    tenant_id: str
    status: str
    severity: str
    service: str
    signal_count: int
    correlation_rule: str
    policy: str | None
    source_run_id: str | None
    decision_id: str | None
    incident_id: str | None
    submitted_at: datetime
    decisions: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []


def validate_submission(payload: Any) -> CandidateSubmission:
    if not isinstance(payload, dict):
        raise CandidateRequestError("invalid candidate: expected a JSON object")
    try:
        return CandidateSubmission.model_validate(payload)
    except ValidationError as exc:
        raise CandidateRequestError(f"invalid candidate: {describe(exc)}") from None


def check_tenant_limits(
    sessions: sessionmaker[Session], facts: CandidateFacts, default_max_signal_count: int
) -> None:
    """Refuse a candidate its tenant's promotion limits do not allow (CandidateLimitError)."""
    with sessions() as session:
        limits = promotion_limits(session, facts.tenant_id, default_max_signal_count)
    try:
        check_candidate_limits(facts, limits)
    except PromotionError as exc:
        raise CandidateLimitError(exc.field or "candidate", str(exc)) from None


async def submit_candidate(
    client: Client,
    sessions: sessionmaker[Session],
    task_queue: str,
    payload: Any,
    *,
    default_max_signal_count: int = DEFAULT_MAX_SIGNAL_COUNT,
) -> tuple[Submitted, WorkflowHandle]:
    """Validate, hold to the tenant's limits (``default_max_signal_count``: the bound of a
    tenant that sets none), store, start (or join) ``candidate-<id>``; returns what
    happened and a handle."""
    submission = validate_submission(payload)
    check_tenant_limits(sessions, submission.facts(), default_max_signal_count)
    created = store_candidate(sessions, submission)
    workflow_id = candidate_workflow_id(submission.candidate_id)
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            {"candidate_id": submission.candidate_id},
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            result_type=PromotionResult,
        )
        run_id = handle.result_run_id
    except WorkflowAlreadyStartedError as exc:  # it ended already: join its outcome
        handle = client.get_workflow_handle(workflow_id, result_type=PromotionResult)
        run_id, created = exc.run_id, False
    outcome = Submitted(
        candidate_id=submission.candidate_id,
        workflow_id=workflow_id,
        run_id=run_id,
        duplicate=not created,
    )
    return outcome, handle


def human_authority(
    candidate_id: str, actor: str, authority_type: str, justification: str | None
) -> AuthorityContext:
    try:
        kind = human_authority_type(authority_type, "authority")
    except ValueError as exc:
        raise CandidateRequestError(str(exc)) from None
    try:
        return AuthorityContext(
            authority_type=kind,
            authority_id=actor,
            session_id=candidate_id,
            justification=justification or f"manual promotion by {actor}",
        )
    except ValidationError as exc:
        raise CandidateRequestError(f"invalid authority: {describe(exc)}") from None


async def promote_candidate(
    client: Client,
    sessions: sessionmaker[Session],
    task_queue: str,
    candidate_id: str,
    *,
    actor: str,
    authority_type: str,
    justification: str | None = None,
) -> PromotionResult:
    """Manual promotion of a DEFERRED candidate by a human authority; waits for the result.
    The caller vouches for ``actor`` and ``authority_type``: the operator CLI (trusted) or
    the HTTP API, which takes both from the API key, never from the request body."""
    authority = human_authority(candidate_id, actor, authority_type, justification)
    with sessions() as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise CandidateRequestError(f"unknown candidate {candidate_id!r}")
        if candidate.status != CandidateStatus.DEFERRED:
            incident = f" (incident {candidate.incident_id})" if candidate.incident_id else ""
            raise CandidateRequestError(
                f"candidate {candidate_id!r} is {candidate.status}{incident}, not DEFERRED; "
                "only a deferred candidate can be promoted manually"
            )
    try:
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            {"candidate_id": candidate_id, "authority": authority.model_dump(mode="json")},
            id=candidate_workflow_id(candidate_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            result_type=PromotionResult,
        )
    except WorkflowAlreadyStartedError:
        raise CandidateRequestError(
            f"candidate {candidate_id!r} is being processed right now; retry when it ends"
        ) from None
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        raise CandidateRequestError(f"promotion of {candidate_id!r} failed: {exc.cause}") from None


def _view(row: Candidate) -> CandidateView:
    policy = row.meta.get("policy_id")
    return CandidateView(
        candidate_id=row.id,
        tenant_id=row.tenant_id,
        status=row.status,
        severity=row.severity,
        service=row.service,
        signal_count=row.signal_count,
        correlation_rule=f"{row.correlation_rule_id} v{row.correlation_rule_version}",
        policy=f"{policy} v{row.meta.get('policy_version')}" if policy else None,
        source_run_id=row.source_run_id,
        decision_id=row.decision_id,
        incident_id=row.incident_id,
        submitted_at=row.submitted_at,
    )


def _columns(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def show_candidate(sessions: sessionmaker[Session], candidate_id: str) -> CandidateView:
    """A candidate with its decisions and orchestration-log rows (an operator read)."""
    with sessions() as session:
        row = session.get(Candidate, candidate_id)
        if row is None:
            raise CandidateRequestError(f"unknown candidate {candidate_id!r}")
        view = _view(row)
        decisions = session.scalars(
            select(PromotionDecisionRecord)
            .where(PromotionDecisionRecord.candidate_id == candidate_id)
            .order_by(PromotionDecisionRecord.decided_at)
        )
        view.decisions = [
            _columns(d, ("id", "decision", "reason", "policy_id", "policy_version",
                         "authority_type", "authority_id", "incident_id", "decided_at"))
            for d in decisions
        ]  # fmt: skip
        attempts = session.scalars(
            select(OrchestrationAttempt)
            .where(OrchestrationAttempt.candidate_id == candidate_id)
            .order_by(OrchestrationAttempt.started_at)
        )
        view.attempts = [
            _columns(a, ("workflow_run_id", "authority_type", "status", "decision",
                         "incident_id", "error", "duration_ms", "started_at", "expires_at"))
            for a in attempts
        ]  # fmt: skip
        return view


def list_candidates(
    sessions: sessionmaker[Session], status: str | None = None, limit: int = 200
) -> list[CandidateView]:
    with sessions() as session:
        stmt = select(Candidate).order_by(Candidate.submitted_at.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(Candidate.status == status)
        return [_view(row) for row in session.scalars(stmt)]
