"""PromoteCandidateWorkflow: glue between the candidate store, the engine and incidents.

load candidate (missing → fail) → its tenant's promotion limits, read with it (a policy
the tenant may not name or a signal_count past its bound → fail) → policy id/version
from its metadata (missing → fail) → ONE promotion-engine call (PROMOTE / DEFER /
SUPPRESS) → apply the decision, which creates at most one incident. No policy
branching, no severity logic and no retries here: activity retry policies are the only
retry, and a deferred candidate simply ends the execution (a human promotes it later
with a new execution of the same workflow id).
"""

from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.candidates import CandidateActivities
    from domain import promotion
    from domain.candidates import (
        ApplyDecisionRequest,
        CandidateLookup,
        FailureRequest,
        PromoteCandidateInput,
        PromotionResult,
        auto_engine_authority,
        candidate_id_from_workflow_id,
    )
    from domain.validation_errors import describe
    from workflows import patches
    from workflows.errors import is_cancellation, one_object
    from workflows.options import DB_WRITE


class OrchestrationFailure(Exception):
    """Fail closed: ``kind`` becomes the ApplicationError type the caller sees."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _activity_failure(exc: FailureError) -> OrchestrationFailure:
    """What failed: an ActivityError's cause, or a local activity's failure as it came (an
    ApplicationError, a TimeoutError of its last attempt, ...)."""
    cause: BaseException = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    kind = cause.type if isinstance(cause, ApplicationError) and cause.type else "ActivityFailed"
    message = cause.message if isinstance(cause, FailureError) else str(cause)
    return OrchestrationFailure(kind, message or type(cause).__name__)


@workflow.defn(name="PromoteCandidateWorkflow")
class PromoteCandidateWorkflow:
    """Promotes one incident candidate; workflow id ``candidate-<candidate_id>``."""

    @workflow.run
    async def run(self, *args: Any) -> PromotionResult:
        # Untyped on purpose: a payload that is not one JSON object fails the workflow at
        # once (InvalidCandidateInput), never its task while decoding.
        started_at = workflow.now()
        inp = self._parse(args)
        candidate_id = inp.candidate_id or candidate_id_from_workflow_id(
            workflow.info().workflow_id
        )
        authority = inp.authority or auto_engine_authority(candidate_id)
        tenant_id = policy_id = policy_version = None
        try:
            lookup = await self._load(candidate_id)
            if lookup.candidate is None:
                raise OrchestrationFailure(
                    "UnknownCandidate", f"unknown candidate {candidate_id!r}"
                )
            candidate = lookup.candidate
            tenant_id = candidate.tenant_id
            policy_id = candidate.metadata.get("policy_id")
            policy_version = candidate.metadata.get("policy_version")
            if lookup.limits is not None:  # None: recorded before limits existed
                promotion.check_candidate_limits(candidate, lookup.limits)
            request = promotion.build_request(candidate, authority)
            decision = promotion.decide(request)
            return await self._apply(
                ApplyDecisionRequest(
                    candidate=candidate,
                    decision=decision,
                    started_at=started_at,
                    decided_at=workflow.now(),
                )
            )
        except promotion.PromotionError as exc:
            failure = OrchestrationFailure(exc.kind, str(exc))
        except ActivityError as exc:
            failure = _activity_failure(exc)
        except FailureError as exc:  # a local activity's failure is its cause, unwrapped
            if is_cancellation(exc) or not workflow.patched(patches.RECORD_LOCAL_ACTIVITY_FAILURES):
                raise  # cancelled; or before the patch: the workflow failed unrecorded
            failure = _activity_failure(exc)
        except OrchestrationFailure as exc:
            failure = exc
        await workflow.execute_local_activity_method(
            CandidateActivities.record_failure,
            FailureRequest(
                candidate_id=candidate_id,
                tenant_id=tenant_id,
                authority=authority,
                policy_id=policy_id,
                policy_version=policy_version,
                error_type=failure.kind,
                error=str(failure),
                started_at=started_at,
                failed_at=workflow.now(),
            ),
            **DB_WRITE,
        )
        raise ApplicationError(str(failure), type=failure.kind, non_retryable=True)

    @staticmethod
    def _parse(args: tuple[Any, ...]) -> PromoteCandidateInput:
        """Validate the input; a bad one fails the workflow at once, naming the field."""
        raw, problem = one_object(args)
        try:
            if raw is None:
                raise ValueError(problem)
            inp = PromoteCandidateInput.model_validate(raw)
        except ValueError as exc:  # a pydantic ValidationError is one
            reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ApplicationError(
                f"invalid PromoteCandidateWorkflow input: {reason}",
                type="InvalidCandidateInput",
                non_retryable=True,
            ) from None
        expected = candidate_id_from_workflow_id(workflow.info().workflow_id)
        if inp.candidate_id is not None and inp.candidate_id != expected:
            raise ApplicationError(
                f"candidate_id: {inp.candidate_id!r} does not match the workflow id "
                f"{workflow.info().workflow_id!r} (expected candidate-{inp.candidate_id})",
                type="InvalidCandidateInput",
                non_retryable=True,
            )
        return inp

    @staticmethod
    async def _load(candidate_id: str) -> CandidateLookup:
        return await workflow.execute_local_activity_method(
            CandidateActivities.load, candidate_id, **DB_WRITE
        )

    @staticmethod
    async def _apply(req: ApplyDecisionRequest) -> PromotionResult:
        return await workflow.execute_local_activity_method(
            CandidateActivities.apply_decision, req, **DB_WRITE
        )
