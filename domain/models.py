"""Payloads that cross the Temporal boundary: workflow input, signals, query result.

Every model forbids unknown fields, so a typo in a payload is refused with the field's
name instead of being silently ignored.
"""

from decimal import Decimal
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from domain import agent, step_refs
from domain.enums import (
    Authority,
    ObservabilityMode,
    PauseReason,
    PauseTimeoutBehavior,
    Phase,
    RunStatus,
)
from domain.skill_catalog import SkillCatalog, UnknownSkillError
from domain.skill_discovery import installed_catalog
from domain.step_refs import STEP_ID_PATTERN
from domain.validation_errors import describe_first

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
MAX_MONEY = Decimal("1000000000")  # far below what Numeric(18, 6) holds
MAX_SECONDS = 366 * 24 * 3600
# A run's input travels in its workflow's history (its first event, and each step's own
# input again): at most the HTTP API's body limit, half of Temporal's 2 MB payload limit.
MAX_RUN_INPUT_BYTES = 1024 * 1024


def _no_nul(value: Any, where: str = "input") -> None:
    """PostgreSQL cannot store NUL in text or JSON: refuse it before anything is written."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, where)
            _no_nul(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, f"{where}.{i}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlannedStep(Strict):
    """One step of a run as the workflow and its activities carry it: a skill name and its
    input, checked for structure only (whether the skill exists is the catalog's); ``id``
    names it for later steps' references to its output (domain.step_refs)."""

    id: str | None = Field(default=None, pattern=STEP_ID_PATTERN)
    skill: str = Field(min_length=1)
    input: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storable(self) -> "PlannedStep":
        _no_nul(self.input)
        return self


SKILLS = "skills"
"""Validation context key: the SkillCatalog a StepSpec is checked against, or None (workflow
code: which skills a worker has must not change a replay)."""


def skill_problem(catalog: SkillCatalog, skill: str, raw: dict[str, Any]) -> str | None:
    """Why ``catalog`` refuses this step (an unknown skill, an input that does not fit). An
    input with references to earlier outputs is checked once they are resolved, when the
    step runs (steps.execute); here only its skill."""
    try:
        if skill == agent.AGENT:  # its tools too; references only in its prompts
            catalog.entry(skill)
            problem = agent.input_problem(raw, catalog.names)
            return None if problem is None else f"input for skill {skill!r}: {problem}"
        if step_refs.refs_in(raw):
            catalog.entry(skill)
            return None
        catalog.validate(skill, raw)
    except UnknownSkillError as exc:
        return str(exc)
    except ValidationError as exc:
        return f"input for skill {skill!r}: {describe_first(exc)}"
    return None


class StepSpec(PlannedStep):
    """One step of a run: a skill and its input, checked against the skill catalog — this
    process's installed one (domain.skill_discovery), or the context's ``skills`` (None:
    none)."""

    @model_validator(mode="after")
    def _input_fits_skill(self, info: ValidationInfo) -> "StepSpec":
        context = info.context if isinstance(info.context, dict) else {}
        catalog = context[SKILLS] if SKILLS in context else installed_catalog()
        problem = None if catalog is None else skill_problem(catalog, self.skill, self.input)
        if problem is not None:
            raise ValueError(problem)
        return self


class Actor(Strict):
    id: str = Field(min_length=1, max_length=200)
    authority: Authority

    @model_validator(mode="after")
    def _printable(self) -> "Actor":
        _no_nul(self.id, "actor.id")
        return self


class RunOptions(Strict):
    """A run's governance settings: unset fields take the tenant's (else the worker's);
    a set field may only tighten them (domain.governance)."""

    observability_mode: ObservabilityMode | None = None
    policy_check_enabled: bool | None = None
    policy_check_interval_seconds: int | None = Field(default=None, ge=0, le=MAX_SECONDS)
    policy_check_min_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    pause_sla_seconds: int | None = Field(default=None, gt=0, le=MAX_SECONDS)
    pause_notify_before_seconds: int | None = Field(default=None, ge=0, le=MAX_SECONDS)
    pause_timeout_behavior: PauseTimeoutBehavior | None = None
    run_timeout_seconds: int | None = Field(default=None, gt=0, le=MAX_SECONDS)
    # Pause the run once (BUDGET_WARNING) when its cost reaches this share of its budget.
    budget_warning_percent: int | None = Field(default=None, ge=1, le=100)


class RunInput(Strict):
    """Input of ``RunWorkflow``; what ``temporal workflow start --input`` sends."""

    run_id: str | None = Field(default=None, pattern=ID_PATTERN)
    tenant_id: str = Field(pattern=ID_PATTERN)
    steps: list[StepSpec] = Field(min_length=1, max_length=500)
    budget: Decimal | None = Field(default=None, ge=0, le=MAX_MONEY, decimal_places=6)
    options: RunOptions = Field(default_factory=RunOptions)
    # Who submits the run: the HTTP API sets the key's authority (a body may not name it);
    # taken as written from anyone with namespace access (README, Security model). Only a
    # submitter the tenant lets loosen an option may (domain.governance).
    submitted_by: Actor | None = None

    @model_validator(mode="after")
    def _references_work(self) -> "RunInput":
        found = step_refs.problems([(s.id, s.input) for s in self.steps])
        if found:
            raise ValueError("; ".join(found[:5]))
        return self

    @model_validator(mode="after")
    def _agent_budgets_fit(self) -> "RunInput":
        """An agent's own budget is at most the run's (when both are given)."""
        for index, step in enumerate(self.steps):
            own = step.input.get("budget") if step.skill == agent.AGENT else None
            if own is None or self.budget is None:
                continue
            try:
                over = Decimal(str(own)) > self.budget
            except ArithmeticError:
                continue  # not a number: the agent's input refuses it
            if over:
                raise ValueError(f"steps.{index}.input.budget: {own} exceeds the run's "
                                 f"budget {self.budget}")  # fmt: skip
        return self


class RunConfig(Strict):
    """Behaviour settings resolved once when the run starts (recorded in history)."""

    observability_mode: ObservabilityMode
    policy_check_enabled: bool
    policy_check_interval_seconds: int
    policy_check_min_steps: int
    pause_sla_seconds: int
    pause_notify_before_seconds: int
    pause_timeout_behavior: PauseTimeoutBehavior
    run_timeout_seconds: int
    finalize_grace_seconds: int
    search_attributes: bool = True
    budget_warning_percent: int | None = None  # off unless the tenant or the run sets it


class PauseRequest(Strict):
    reason: PauseReason = PauseReason.MANUAL_PAUSE
    actor: Actor


class ResumeRequest(Strict):
    actor: Actor


class StopRequest(Strict):
    actor: Actor
    reason: str = Field(default="manual stop", max_length=500)

    @model_validator(mode="after")
    def _printable(self) -> "StopRequest":
        _no_nul(self.reason, "reason")
        return self


HEX_DIGEST = r"^[0-9a-f]{64}$"


class AwaitedApproval(Strict):
    """The step a run holds for an approval: what the approval must name (``digest``)."""

    step_index: int
    skill: str
    rule_name: str
    reason: str
    policy_version: int
    digest: str = Field(pattern=HEX_DIGEST)


class ApproveRequest(Strict):
    """Approve the step a run holds (APPROVAL_REQUIRED): its digest, from ``status``."""

    actor: Actor
    digest: str = Field(pattern=HEX_DIGEST)


class PauseView(Strict):
    reason: PauseReason
    paused_by: str
    paused_at: str
    sla_deadline: str
    resumable_by: list[Authority]
    timeout_behavior: PauseTimeoutBehavior
    escalated: bool = False
    approval: AwaitedApproval | None = None  # an APPROVAL_REQUIRED pause: what to approve


class RunStatusView(Strict):
    """Result of the ``status`` query."""

    run_id: str
    tenant_id: str
    phase: Phase
    status: RunStatus
    step_index: int
    steps_total: int
    cost: Decimal
    budget: Decimal | None
    pause: PauseView | None = None
    pause_requested: bool = False  # accepted, applied at the next step boundary
    stop_requested: bool = False
    failure_reason: str | None = None


class RunResult(Strict):
    """What ``RunWorkflow`` returns: the run's end state."""

    run_id: str
    phase: Phase
    status: RunStatus
    reason: str | None = None
    steps_done: int
    cost: Decimal
    incident_id: str | None = None
    policy_outcome: str | None = None
    rolled_back: bool = False
