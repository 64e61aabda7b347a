"""Skill name → implementation. Input models live in domain.skill_catalog."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.errors import SkillError
from activities.skills.http import http
from activities.skills.llm import llm, reservation
from activities.skills.text import echo, template
from domain.skill_catalog import SKILL_INPUTS, validate_skill_input
from domain.validation_errors import describe_errors

SKILLS: dict[str, Callable[[Any, SkillContext], SkillOutput]] = {
    "echo": echo,
    "template": template,
    "http": http,
    "llm": llm,
}
assert SKILLS.keys() == SKILL_INPUTS.keys(), "every catalogued skill needs an implementation"

CALLS_OUT = frozenset({"http", "llm"})
"""The skills that call out: each step of one gets its tenant's egress policy."""


def reserve(name: str, raw_input: dict[str, Any], ctx: SkillContext) -> Decimal:
    """The most a step of this skill can cost, judged against the budget before it runs: an
    llm call its worst case (activities.skills.llm.reservation), any other skill its base
    cost. An input that does not validate reserves the base cost (the skill refuses it)."""
    if name != "llm":
        return ctx.base_cost
    try:
        return reservation(validate_skill_input(name, raw_input), ctx)
    except ValidationError:
        return ctx.base_cost


def run_skill(name: str, raw_input: dict[str, Any], ctx: SkillContext) -> SkillOutput:
    return SKILLS[name](_validated(name, raw_input), ctx)


def _validated(name: str, raw_input: dict[str, Any]) -> Any:
    """The skill's input model. The workflow validated the input as written; once secrets
    are substituted it may not validate: a failure names the fields, never their values."""
    try:
        return validate_skill_input(name, raw_input)
    except ValidationError as exc:
        problems = describe_errors(exc.errors(include_input=False, include_url=False))
        raise SkillError(f"{name}: invalid input: {problems}", retryable=False) from None
