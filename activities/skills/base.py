"""What a skill receives and returns (its failure: activities.skills.errors)."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from activities.skills.errors import SkillError

if TYPE_CHECKING:
    from activities.skills.egress import Outbound


@dataclass(frozen=True)
class LlmEndpoint:
    base_url: str
    api_key: str
    default_model: str
    price_per_1k_input: Decimal
    price_per_1k_output: Decimal
    # The completion tokens a call without its own max_tokens may use (and is sent).
    default_max_tokens: int = 1024


@dataclass(frozen=True)
class SkillContext:
    """What skills get: built once per worker (runtime.worker_factory); ``outbound`` (the
    egress policy of the step's tenant) is bound per step by StepActivities, for the skills
    that call out."""

    llm: LlmEndpoint
    base_cost: Decimal
    outbound: "Outbound | None" = None

    def calling_out(self) -> "Outbound":
        """The step's outbound path; a skill never calls out without one."""
        if self.outbound is None:
            raise SkillError("no egress policy is bound to this step", retryable=False)
        return self.outbound


@dataclass(frozen=True)
class SkillOutput:
    output: dict[str, Any]
    cost: Decimal
    details: dict[str, Any] = field(default_factory=dict)
