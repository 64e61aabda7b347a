"""Activity requests and results: plain models, never ORM objects."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from domain.chat_tools import ToolDefinition
from domain.enums import (
    Authority,
    AuthorizationDecision,
    EvaluationOutcome,
    IncidentCategory,
    PauseReason,
    PauseTimeoutBehavior,
    Phase,
    PolicyDecision,
    RunStatus,
    Severity,
    ViolationType,
)
from domain.models import Actor, AwaitedApproval, PlannedStep, RunConfig, RunOptions, Strict


class Done(Strict):
    """Result of a write that returns nothing but must be remembered by the ledger."""


class TransitionRequest(Strict):
    """One phase change; committed alone (runs.transition) or with the write it precedes."""

    run_id: str
    seq: int
    from_phase: Phase
    to_phase: Phase
    status: RunStatus
    reason: str | None = None
    steps_done: int | None = None
    cost: Decimal | None = None
    events: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)


class OpenRunRequest(Strict):
    """Create, declare the contract, authorize, and enter AUTHORIZED if allowed: one commit."""

    run_id: str
    tenant_id: str
    steps: list[PlannedStep]  # their skills are checked when the run opens (runs.open)
    budget: Decimal | None
    options: RunOptions
    authorized: TransitionRequest
    submitted_by: Actor | None = None  # whose leave a loosening option needs
    # The authorization's reading of the live policy state answers the check before
    # step 0 (recorded as that check) unless it calls for more than CONTINUE.
    first_check: bool = False


class AuthorizeResult(Strict):
    decision: AuthorizationDecision
    reason: str
    budget_limit: Decimal | None = None
    limits_version: int | None = None
    policy_version: int | None = None
    enabled_rule_ids: list[str] = Field(default_factory=list)


class OpenRunResult(Strict):
    config: RunConfig
    started_at: datetime
    authorization: AuthorizeResult
    first_check_recorded: bool = False
    # The tools the run's agent steps offer their model, from the worker's catalog when the
    # run opened (domain.agent.tool_definitions): recorded here, so a replay never depends
    # on which plugins a worker has. Empty for a run without agent steps.
    agent_tools: list[ToolDefinition] = Field(default_factory=list)


class AmendContractRequest(Strict):
    """Withdraw planned actions the run will no longer do, declare new ones."""

    run_id: str
    tenant_id: str
    key: str
    withdraw: list[tuple[str, str]] = Field(default_factory=list)
    withdraw_all_open: bool = False
    declare: list[tuple[str, str]] = Field(default_factory=list)
    reason: str


class DegradedRequest(Strict):
    run_id: str
    tenant_id: str
    error: str


class TraceRequest(Strict):
    run_id: str
    tenant_id: str
    enter: TransitionRequest | None = None  # the phase change committed with this write
    reconcile: bool = False  # traces.complete: also read the run's own reconciliation


class TraceStarted(Strict):
    trace_id: str


class ReconcileRunResult(Strict):
    status: str
    missing: list[tuple[str, str]]
    drift: list[tuple[str, str]]


class TraceCompleted(Strict):
    trace_id: str
    head_hash: str
    step_count: int
    reconciliation: ReconcileRunResult | None = None


class StepRequest(Strict):
    run_id: str
    tenant_id: str
    index: int
    skill: str
    input: dict[str, Any]
    traced: bool
    prev_hash: str
    # For the judgement before the step (domain.policy_rules.judge_step): the run's cost so
    # far and its budget (the activity reads the tenant's live limit and rules itself).
    cost_so_far: Decimal = Decimal(0)
    budget: Decimal | None = None
    approved_digest: str | None = None  # the approval this attempt of the step carries
    # An agent's tool call refused before it could run (domain.agent.plan_calls): recorded
    # as a step that did not run, this its error; neither judged nor run.
    refusal: str | None = None
    # The model's id of the tool call this step answers (an agent's tool call): its
    # ``execute_tool`` span carries it (observability.genai).
    tool_call_id: str | None = None


class StepPrevention(Strict):
    """Why a step was not run: the rule (or the budget) that stopped it."""

    rule_id: str | None
    rule_name: str
    outcome: str
    reason: str

    @property
    def by_budget(self) -> bool:
        return self.rule_id is None


class StepResult(Strict):
    ok: bool
    output: dict[str, Any]
    cost: Decimal
    error: str | None = None
    hash: str | None = None
    # The tenant is at its steps-in-flight limit: nothing ran, nothing was recorded; the
    # workflow waits and schedules the step again (services.step_slots).
    waiting_for_slot: bool = False
    # A rule or the budget stopped the step before it ran (nothing ran; the prevention is
    # recorded). Absent from histories recorded before prevention existed.
    prevented: StepPrevention | None = None
    # A REQUIRE_APPROVAL rule holds the step: nothing ran, nothing was recorded; the run
    # pauses (APPROVAL_REQUIRED) and, approved, schedules the step again with the digest.
    approval_required: AwaitedApproval | None = None


class RunFacts(Strict):
    """What governance looks at once execution is over."""

    run_id: str
    tenant_id: str
    status: RunStatus
    skills_used: list[str]
    steps_done: int
    cost: Decimal
    budget: Decimal | None
    failure_reason: str | None = None
    violations: list[str] = Field(default_factory=list)


class EvaluateRequest(Strict):
    facts: RunFacts
    enter: TransitionRequest | None = None  # the phase change committed with this write


class EvaluationResult(Strict):
    evaluation_id: str
    outcome: EvaluationOutcome
    prevention_record_ids: list[str]
    limit_breach_ids: list[str]


class IncidentRequest(Strict):
    run_id: str
    tenant_id: str
    key: str = "create_incident"
    category: IncidentCategory
    severity: Severity
    title: str
    description: str


class IncidentResult(Strict):
    incident_id: str


class RollbackRequest(Strict):
    run_id: str
    tenant_id: str
    reason: str


class FinalizeRequest(Strict):
    run_id: str
    tenant_id: str
    seq: int
    from_phase: Phase
    to_phase: Phase
    status: RunStatus
    reason: str | None
    steps_done: int
    cost: Decimal
    events: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)
    enter: TransitionRequest | None = None  # a phase change committed just before (FINALIZING)


class FinalizeResult(Strict):
    """What finalization committed; a repeated call returns the first commit's values."""

    phase: Phase
    status: RunStatus
    reason: str | None


class PolicyCheckRequest(Strict):
    run_id: str
    tenant_id: str
    step_index: int
    cost: Decimal
    run_budget: Decimal | None
    limits_version: int | None
    policy_version: int | None
    enabled_rule_ids: list[str]


class PolicyCheckResult(Strict):
    decision: PolicyDecision
    violations: list[ViolationType]
    budget_limit: Decimal | None
    limits_version: int | None
    policy_version: int | None
    enabled_rule_ids: list[str]


class PauseRecordRequest(Strict):
    run_id: str
    tenant_id: str
    pause_no: int
    reason: PauseReason
    actor_id: str
    authority: Authority
    paused_at: datetime
    sla_deadline: datetime
    resumable_by: list[Authority]
    timeout_behavior: PauseTimeoutBehavior


class PauseUpdateRequest(Strict):
    """A pause's warning, escalation or resolution (RESUMED, AUTO_RESUMED, STOPPED, ...)."""

    run_id: str
    tenant_id: str
    pause_no: int
    kind: str
    actor_id: str = "system:governed-runs"
    authority: Authority = Authority.SYSTEM_AUTO
    sla_deadline: datetime | None = None
    digest: str | None = None  # APPROVED: the step approval it consumed


class RefusalRequest(Strict):
    """A refused signal (malformed, or a resume by an authority that may not resume)."""

    run_id: str
    tenant_id: str
    key: str
    signal: str
    actor_id: str
    authority: str | None
    reason: str
