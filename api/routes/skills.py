"""The skill catalog: the skills a run may name, as this API process discovered them
(domain.skill_discovery; the workers are expected to have the same plugins).

Any key may read it. The entry points that failed to load are the operator's to see
(``starter.py skills``), not listed here.
"""

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import Field

from api.deps import UNAUTHORIZED, Caller
from domain.models import Strict
from domain.skill_discovery import installed_catalog

router = APIRouter(prefix="/skills", tags=["skills"], responses=UNAUTHORIZED)


class CostModelView(Strict):
    """What a step of the skill may cost: ``base`` (the worker's base cost), ``fixed``
    (``amount``) or ``metered`` (its worst case for the input reserved before the step,
    what it reports counted after)."""

    kind: Literal["base", "fixed", "metered"]
    amount: str | None = None
    reservation: str | None = None


class SkillView(Strict):
    """One installed skill; ``input_schema`` is the JSON schema a step's input must fit."""

    name: str
    description: str
    version: str
    source: str = Field(description="'built-in', or the plugin distribution's name")
    input_schema: dict[str, Any]
    cost_model: CostModelView
    calls_out: bool = Field(description="its steps go through the tenant's egress policy")
    timeout_seconds: float = Field(description="past this the skill counts as hung")


def skill_views() -> list[SkillView]:
    described = installed_catalog().describe()["skills"]
    return [SkillView.model_validate({k: v for k, v in s.items() if k != "entry_point"})
            for s in described]  # fmt: skip


@router.get("")
async def list_skills(caller: Caller) -> list[SkillView]:
    """The installed skills, by name."""
    return skill_views()
