"""Incident candidates: the submitted candidate and the models that cross Temporal.

A candidate comes from correlation (a ``CandidateCreated`` event). Its schema is not
ours to change: the submission accepts the event's camelCase field names as well as
snake_case. The promotion policy is named in ``metadata`` (``policy_id`` and
``policy_version``) and nowhere else: the orchestrator never derives or overrides it.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from domain.enums import Severity
from domain.models import ID_PATTERN, Strict

WORKFLOW_PREFIX = "candidate-"
AUTO_ENGINE_ID = "opx-candidate-processor"
AUTO_ENGINE_JUSTIFICATION = "Auto-promotion from correlation"
# The signal_count bound of a tenant that sets none (the worker's MAX_SIGNAL_COUNT wins).
DEFAULT_MAX_SIGNAL_COUNT = 10_000

# Severity names used by correlation rules, mapped onto the incident severities.
SEV_ALIASES = {
    "SEV1": Severity.CRITICAL,
    "SEV2": Severity.HIGH,
    "SEV3": Severity.MEDIUM,
    "SEV4": Severity.LOW,
}


def candidate_workflow_id(candidate_id: str) -> str:
    return f"{WORKFLOW_PREFIX}{candidate_id}"


def candidate_id_from_workflow_id(workflow_id: str) -> str:
    return workflow_id.removeprefix(WORKFLOW_PREFIX)


class CandidateStatus(StrEnum):
    """PENDING until a decision is applied; PROMOTED and SUPPRESSED are final."""

    PENDING = "PENDING"
    PROMOTED = "PROMOTED"
    DEFERRED = "DEFERRED"
    SUPPRESSED = "SUPPRESSED"


FINAL_STATUSES = (CandidateStatus.PROMOTED, CandidateStatus.SUPPRESSED)


class Decision(StrEnum):
    PROMOTE = "PROMOTE"
    DEFER = "DEFER"
    SUPPRESS = "SUPPRESS"


class AuthorityType(StrEnum):
    """Who asks for a promotion: the engine itself, or a human (manual promotion)."""

    AUTO_ENGINE = "AUTO_ENGINE"
    HUMAN_OPERATOR = "HUMAN_OPERATOR"
    ON_CALL_SRE = "ON_CALL_SRE"
    EMERGENCY_OVERRIDE = "EMERGENCY_OVERRIDE"


HUMAN_AUTHORITIES = tuple(a for a in AuthorityType if a != AuthorityType.AUTO_ENGINE)


def human_authority_type(value: str, source: str) -> AuthorityType:
    """``value`` as a human promotion authority; ``source`` names where it came from.
    AUTO_ENGINE is the engine's own authority: nobody may be given it."""
    if value == AuthorityType.AUTO_ENGINE:
        raise ValueError(
            f"{source}: AUTO_ENGINE is the promotion engine's own authority; "
            "it may never be given to a person or a key"
        )
    if value not in HUMAN_AUTHORITIES:
        allowed = ", ".join(HUMAN_AUTHORITIES)
        raise ValueError(f"{source}: {value!r} is not one of {allowed}")
    return AuthorityType(value)


class AuthorityContext(Strict):
    """The authority behind a promotion request, preserved into decision and incident."""

    authority_type: AuthorityType
    authority_id: str = Field(min_length=1, max_length=200)
    session_id: str = Field(min_length=1, max_length=200)
    justification: str = Field(min_length=1, max_length=1000)


def auto_engine_authority(candidate_id: str) -> AuthorityContext:
    """The locked authority of automatic promotion (session = the candidate id)."""
    return AuthorityContext(
        authority_type=AuthorityType.AUTO_ENGINE,
        authority_id=AUTO_ENGINE_ID,
        session_id=candidate_id,
        justification=AUTO_ENGINE_JUSTIFICATION,
    )


def _severity(value: Any) -> Any:
    if isinstance(value, str):
        return SEV_ALIASES.get(value.upper(), value.upper())
    return value


class CandidateFacts(Strict):
    """What correlation says about a candidate; immutable once submitted."""

    candidate_id: str = Field(pattern=ID_PATTERN)
    tenant_id: str = Field(default="default", pattern=ID_PATTERN)
    correlation_rule_id: str = Field(min_length=1, max_length=100)
    correlation_rule_version: str = Field(min_length=1, max_length=40)
    signal_count: int = Field(ge=0, le=1_000_000_000)
    severity: Severity
    service: str = Field(min_length=1, max_length=200)
    source_run_id: str | None = Field(default=None, pattern=ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)

    _normalize_severity = field_validator("severity", mode="before")(_severity)

    @field_validator("metadata")
    @classmethod
    def _policy_fields_are_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("policy_id", "policy_version"):
            given = value.get(key)
            if given is not None and not (isinstance(given, str) and given.strip()):
                raise ValueError(f"{key} must be a non-empty string when given")
        return value


class CandidateSubmission(CandidateFacts):
    """``starter.py candidate submit`` input: snake_case or the CandidateCreated event."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    event_type: Literal["CandidateCreated"] | None = None
    created_at: AwareDatetime | None = None

    @field_validator("metadata", mode="before")
    @classmethod
    def _camel_policy_keys(cls, value: Any) -> Any:
        """``policyId``/``policyVersion`` are the same keys as ``policy_id``/``policy_version``."""
        if not isinstance(value, dict):
            return value
        renamed = dict(value)
        for camel, snake in (("policyId", "policy_id"), ("policyVersion", "policy_version")):
            if camel in renamed:
                if snake in renamed:
                    raise ValueError(f"give {snake} or {camel}, not both")
                renamed[snake] = renamed.pop(camel)
        if isinstance(renamed.get("policy_version"), int):
            renamed["policy_version"] = str(renamed["policy_version"])
        return renamed

    def facts(self) -> CandidateFacts:
        return CandidateFacts.model_validate(
            self.model_dump(include=set(CandidateFacts.model_fields))
        )


class PromotionLimits(Strict):
    """A tenant's bounds on what its submitters may name (``tenants.promotion_policies``
    and ``tenants.max_signal_count``, or the operator's defaults)."""

    tenant_id: str
    policy_ids: tuple[str, ...] | None = Field(
        default=None, description="policy ids the tenant may name; None: every frozen policy"
    )
    max_signal_count: int = Field(ge=0)


class CandidateSnapshot(CandidateFacts):
    """A stored candidate as the workflow sees it (result of ``candidates.load``)."""

    status: CandidateStatus
    created_at: datetime


class CandidateLookup(Strict):
    """Result of ``candidates.load``: the candidate and its tenant's promotion limits, read
    in one transaction. ``limits`` is None in histories recorded before limits existed
    (their replay must not check what they never checked)."""

    candidate: CandidateSnapshot | None = None
    limits: PromotionLimits | None = None


class PromotionDecision(Strict):
    """The promotion engine's answer. Ids are derived from the inputs, never random."""

    decision_id: str
    candidate_id: str
    decision: Decision
    reason: str
    policy_id: str
    policy_version: str
    authority: AuthorityContext
    context_hash: str
    incident_id: str | None = None


class PromoteCandidateInput(Strict):
    """Input of ``PromoteCandidateWorkflow``; the candidate id defaults to the workflow id's."""

    candidate_id: str | None = Field(default=None, pattern=ID_PATTERN)
    authority: AuthorityContext | None = None


class PromotionResult(Strict):
    """What ``PromoteCandidateWorkflow`` returns."""

    candidate_id: str
    decision: Decision
    decision_id: str
    reason: str
    policy_id: str
    policy_version: str
    authority: AuthorityContext
    incident_id: str | None = None


class ApplyDecisionRequest(Strict):
    candidate: CandidateSnapshot
    decision: PromotionDecision
    started_at: datetime
    decided_at: datetime


class FailureRequest(Strict):
    """An orchestration that failed closed: logged and announced, nothing else written."""

    candidate_id: str
    tenant_id: str | None = None
    authority: AuthorityContext
    policy_id: str | None = None
    policy_version: str | None = None
    error_type: str
    error: str
    started_at: datetime
    failed_at: datetime


# ----- events (the frozen orchestration event schema) -----------------------------------

DECISION_TOPICS = {
    Decision.PROMOTE: ("incident.created", "IncidentCreated"),
    Decision.DEFER: ("candidate.deferred", "CandidateDeferred"),
    Decision.SUPPRESS: ("candidate.suppressed", "CandidateSuppressed"),
}
FAILED_TOPIC = "candidate.orchestration_failed"


def decision_event(
    candidate: CandidateFacts, decision: PromotionDecision, at: datetime
) -> tuple[str, dict[str, Any]]:
    """Topic and payload of IncidentCreated / CandidateDeferred / CandidateSuppressed."""
    topic, event_type = DECISION_TOPICS[decision.decision]
    payload: dict[str, Any] = {
        "event_type": event_type,
        "candidate_id": candidate.candidate_id,
        "decision_id": decision.decision_id,
    }
    if decision.decision == Decision.PROMOTE:
        payload |= {
            "incident_id": decision.incident_id,
            "severity": candidate.severity,
            "service": candidate.service,
            "created_at": at.isoformat(),
        }
    else:
        stamp = "deferred_at" if decision.decision == Decision.DEFER else "suppressed_at"
        payload |= {"reason": decision.reason, stamp: at.isoformat()}
    return topic, payload


def failure_event(req: FailureRequest) -> tuple[str, dict[str, Any]]:
    """Topic and payload of OrchestrationFailed."""
    return FAILED_TOPIC, {
        "event_type": "OrchestrationFailed",
        "candidate_id": req.candidate_id,
        "error": req.error,
        "failed_at": req.failed_at.isoformat(),
    }
