"""Request and response bodies of the HTTP API (the OpenAPI document is built from them)."""

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from domain.candidates import CandidateSubmission
from domain.enums import PauseReason
from domain.evidence import ModelUsage
from domain.models import ID_PATTERN, PauseView, RunOptions, RunStatusView, StepSpec, Strict

YEAR = 366 * 24 * 3600


class ApiRunOptions(RunOptions):
    """RunOptions with the upper bounds the database and the clock can hold."""

    policy_check_interval_seconds: int | None = Field(default=None, ge=0, le=YEAR)
    policy_check_min_steps: int | None = Field(default=None, ge=1, le=500)
    pause_sla_seconds: int | None = Field(default=None, gt=0, le=YEAR)
    pause_notify_before_seconds: int | None = Field(default=None, ge=0, le=YEAR)
    run_timeout_seconds: int | None = Field(default=None, gt=0, le=YEAR)


class RunCreate(Strict):
    """A run to start; the tenant is the API key's. Same fields as RunWorkflow's input,
    with the bounds a stored run can hold (budget: 12 digits before the point, 6 after)."""

    run_id: str | None = Field(default=None, pattern=ID_PATTERN)
    steps: list[StepSpec] = Field(min_length=1, max_length=500)
    budget: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=6)
    options: ApiRunOptions = Field(default_factory=ApiRunOptions)


INT32_MAX = 2**31 - 1


class CandidateCreate(CandidateSubmission):
    """A CandidateCreated event (camelCase or snake_case); ``tenantId`` defaults to the
    API key's tenant and may not name another one."""

    signal_count: int = Field(ge=0, le=INT32_MAX)


# Fields that would say who promotes (snake and camel case): the API key says it.
IDENTITY_FIELDS = tuple(
    name
    for snake in ("authority_type", "authority", "authority_id", "actor", "actor_id", "session_id")
    for name in dict.fromkeys((snake, to_camel(snake)))
)
IDENTITY_FROM_KEY = (
    "{field} may not be sent: who promotes, and with which authority, is the API key's"
)


def _identity_claimed(name: str, value: Any) -> InitErrorDetails:
    error = PydanticCustomError("identity_from_key", IDENTITY_FROM_KEY, {"field": name})
    return InitErrorDetails(type=error, loc=(name,), input=value)


class CandidatePromote(Strict):
    """A manual promotion: only why. Who promotes, and with which authority, is the API
    key's (its promotion authority, or the operator's mapping of its authority); a body
    naming an identity field is refused (422 naming the field), like any unknown field."""

    justification: str | None = Field(default=None, min_length=1, max_length=1000)

    @model_validator(mode="before")
    @classmethod
    def _identity_comes_from_the_key(cls, data: Any) -> Any:
        if isinstance(data, dict):
            claimed = [_identity_claimed(n, data[n]) for n in IDENTITY_FIELDS if n in data]
            if claimed:
                raise ValidationError.from_exception_data(cls.__name__, claimed)
        return data


class RunAccepted(Strict):
    run_id: str
    workflow_id: str
    tenant_id: str


class PauseBody(Strict):
    reason: PauseReason = PauseReason.MANUAL_PAUSE


class ApproveBody(Strict):
    """The digest of the step the run holds (its status: ``pause.approval.digest``)."""

    digest: str = Field(pattern=r"^[0-9a-f]{64}$")


class StopBody(Strict):
    reason: str = Field(default="stopped through the API", max_length=500)


class SignalAccepted(Strict):
    run_id: str
    signal: str
    actor_id: str
    authority: str


class ControlAccepted(SignalAccepted):
    """An accepted control request: who sent it, how (``update``: the run answered with its
    state; ``signal``: no worker had run it yet, or none answered a pause or stop — Temporal
    buffers the signal and the run applies it at its next step)."""

    delivered: Literal["update", "signal"]
    state: RunStatusView | None = None


class RunView(Strict):
    """A run as the API shows it: live from the workflow while it runs, else from the database."""

    run_id: str
    tenant_id: str
    workflow_status: str
    phase: str
    status: str
    step_index: int
    steps_total: int
    cost: Decimal
    budget: Decimal | None
    pause: PauseView | None = None
    pause_requested: bool = False
    stop_requested: bool = False
    failure_reason: str | None = None
    source: str = Field(description="workflow (status query), database, or temporal")
    usage: list[ModelUsage] = Field(
        default_factory=list,
        description="per model: the run's llm calls so far, their tokens and cost (its trace)",
    )


class Health(Strict):
    status: str
    database: str
    temporal: str


class ErrorBody(Strict):
    detail: str
