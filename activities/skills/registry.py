"""Skill name → implementation. Input models live in domain.skill_catalog."""

from collections.abc import Callable
from typing import Any

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.http import http
from activities.skills.llm import llm
from activities.skills.text import echo, template
from domain.skill_catalog import SKILL_INPUTS, validate_skill_input

SKILLS: dict[str, Callable[[Any, SkillContext], SkillOutput]] = {
    "echo": echo,
    "template": template,
    "http": http,
    "llm": llm,
}
assert SKILLS.keys() == SKILL_INPUTS.keys(), "every catalogued skill needs an implementation"


def run_skill(name: str, raw_input: dict[str, Any], ctx: SkillContext) -> SkillOutput:
    return SKILLS[name](validate_skill_input(name, raw_input), ctx)
