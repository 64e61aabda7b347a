"""What operators ask of a run: its evidence, the proof of its trace, its governance log.

Plain read models, built by ``db.queries.evidence`` from the domain tables and returned by
the CLI (``starter.py evidence|proof|governance``) and the HTTP API alike.
"""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReadModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentEvidence(ReadModel):
    """An incident the run caused (``incidents.source_run_id``)."""

    id: str
    title: str
    category: str
    severity: str
    status: str
    created_at: datetime
    rolled_back: bool
    rollback_reason: str | None = None


class PreventionEvidence(ReadModel):
    """A policy rule that matched the run: PREVENTED, BLOCKED or WARNED (``step_index``: judged
    before that step; a BLOCKED or PREVENTED one stopped it)."""

    id: str
    rule_id: str | None
    rule_name: str
    outcome: str
    reason: str
    status: str
    rolled_back: bool
    step_index: int | None = None


class LimitBreachEvidence(ReadModel):
    """A limit the run went past: the value it reached against the threshold."""

    id: str
    limit_type: str
    value: Decimal
    threshold: Decimal
    status: str
    rolled_back: bool


class PolicyEvaluationEvidence(ReadModel):
    """The run's post-execution policy evaluation with its records and breaches."""

    id: str
    outcome: str
    status: str
    rolled_back: bool
    rollback_reason: str | None = None
    created_at: datetime
    prevention_records: list[PreventionEvidence]
    limit_breaches: list[LimitBreachEvidence]


class AuthorizationEvidence(ReadModel):
    """The authorization decision stored on the run row."""

    decision: str | None
    reason: str | None


class PolicyCheckEvidence(ReadModel):
    """One mid-execution policy check (``policy_checks``)."""

    id: str
    step_index: int
    decision: str
    violations: list[str]
    cost_so_far: Decimal
    checked_at: datetime


class PauseEvidence(ReadModel):
    """One pause of the run and how it ended (``pause_records``)."""

    id: str
    reason: str
    paused_by: str
    paused_by_authority: str
    paused_at: datetime
    sla_deadline: datetime
    resumable_by: list[str]
    timeout_behavior: str
    warned_at: datetime | None
    escalated_at: datetime | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None


class ControlEvidence(ReadModel):
    """A refused signal or a stop, read from the audit ledger."""

    id: str
    kind: str = Field(description="RESUME_REFUSED, SIGNAL_REFUSED, STOP_REQUESTED or STOPPED")
    actor_id: str
    actor_authority: str | None
    reason: str | None
    at: datetime


class PromotionEvidence(ReadModel):
    """A promotion decision on an incident candidate that names the run as its source."""

    id: str
    candidate_id: str
    decision: str
    reason: str
    policy: str
    authority_type: str
    authority_id: str
    incident_id: str | None
    decided_at: datetime


class DecisionsEvidence(ReadModel):
    """Every decision made about the run, each from its own table."""

    authorization: AuthorizationEvidence
    policy_checks: list[PolicyCheckEvidence]
    step_judgements: list[PreventionEvidence] = Field(
        default_factory=list, description="rules and budget judged before a step"
    )
    pauses: list[PauseEvidence]
    control: list[ControlEvidence]
    promotions: list[PromotionEvidence] = Field(default_factory=list)


class ModelUsage(ReadModel):
    """What one model did for a run: its calls (the run's ``llm`` steps, an agent's model
    calls among them, read from the trace), the tokens of their returned usage, their cost."""

    model: str = Field(description="the model that answered (else the one asked for)")
    calls: int
    failed: int = Field(description="calls that failed (no usage, no cost)")
    input_tokens: int
    output_tokens: int
    cost: Decimal


class RunEvidence(ReadModel):
    """Everything linked to one run by its run id."""

    run_id: str
    tenant_id: str
    phase: str
    status: str
    incidents: list[IncidentEvidence]
    policy_evaluations: list[PolicyEvaluationEvidence]
    decisions: DecisionsEvidence
    usage: list[ModelUsage] = Field(default_factory=list)


class ProofStatus(StrEnum):
    VERIFIED = "VERIFIED"
    FAILED = "FAILED"
    UNSUPPORTED = "UNSUPPORTED"


class RunProof(ReadModel):
    """The verification of a run's trace hash chain."""

    run_id: str
    tenant_id: str
    status: ProofStatus
    method: str | None = Field(default=None, description="HASH_CHAIN when a trace exists")
    trace_id: str | None = None
    trace_status: str | None = None
    step_count: int | None = Field(default=None, description="steps in the chain")
    head_hash: str | None = Field(default=None, description="hash of the chain's last step")
    stored_head_hash: str | None = None
    stored_step_count: int | None = None
    stored_head_matches: bool | None = Field(
        default=None, description="the trace's stored head_hash/step_count equal the chain's"
    )
    failed_step: int | None = Field(default=None, description="first step that does not verify")
    reason: str | None = None


class GovernanceEvent(ReadModel):
    """One audit-ledger entry about the run."""

    id: str
    seq: int
    event_type: str
    entity_type: str
    entity_id: str
    tenant_id: str
    actor_id: str
    actor_authority: str | None
    source: str
    before_state: dict[str, Any] | None
    after_state: dict[str, Any]
    created_at: datetime


class GovernanceMetadata(ReadModel):
    tenant_id: str
    run_id: str
    source_domain: str = "audit"
    source_component: str = "audit_ledger"
    immutable: bool = True


class GovernanceLog(ReadModel):
    """The audit-ledger entries whose before or after state carries the run id, in order."""

    run_id: str
    total_events: int
    events: list[GovernanceEvent]
    metadata: GovernanceMetadata
