"""Skills that only transform text: echo and template."""

from string import Template

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.errors import SkillError
from domain.skill_catalog import EchoInput, TemplateInput


def echo(data: EchoInput, ctx: SkillContext) -> SkillOutput:
    return SkillOutput({"text": data.text}, ctx.base_cost)


def template(data: TemplateInput, ctx: SkillContext) -> SkillOutput:
    try:
        rendered = Template(data.template).substitute(
            {k: str(v) for k, v in data.variables.items()}
        )
    except (KeyError, ValueError) as exc:
        raise SkillError(f"template: missing or bad placeholder {exc}", retryable=False) from exc
    return SkillOutput({"text": rendered}, ctx.base_cost)
