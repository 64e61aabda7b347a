"""The example plugin (plugins/example-skills): installed by the test setup (make install),
discovered through its entry points, run by the worker's registry like any skill."""

from decimal import Decimal
from importlib import metadata

import pytest
from pydantic import ValidationError

from activities.skills.registry import SkillRegistry
from domain.skill_discovery import installed_catalog
from runtime.settings import Settings
from runtime.worker_factory import skill_context


@pytest.fixture(scope="module")
def registry() -> SkillRegistry:
    return SkillRegistry(installed_catalog())


@pytest.fixture(scope="module")
def ctx():
    return skill_context(Settings(_env_file=None))


def test_the_plugin_is_installed_with_its_two_entry_points():
    dist = metadata.distribution("governed-runs-example-skills")
    assert {ep.name: ep.value for ep in dist.entry_points} == {
        "word_count": "example_skills:WORD_COUNT", "slugify": "example_skills:SLUGIFY"}  # fmt: skip


def test_word_count_counts_and_costs_its_fixed_amount(registry, ctx):
    text = "The cat and the hat. The end!"
    reserved = registry.reserve("word_count", {"text": text, "top": 2}, ctx)
    assert reserved == Decimal("0.00002")
    out = registry.run("word_count", {"text": text, "top": 2}, ctx, reserved)
    commonest = [{"word": "the", "count": 3}, {"word": "and", "count": 1}]
    assert out.output == {"words": 7, "distinct": 5, "commonest": commonest}
    assert out.cost == Decimal("0.00002")


def test_slugify_is_async_and_costs_the_base_cost(registry, ctx):
    reserved = registry.reserve("slugify", {"title": "Crème Brûlée: a recipe!"}, ctx)
    assert reserved == ctx.base_cost
    out = registry.run("slugify", {"title": "Crème Brûlée: a recipe!", "separator": "_"}, ctx,
                       reserved)  # fmt: skip
    assert (out.output, out.cost) == ({"slug": "creme_brulee_a_recipe"}, ctx.base_cost)


def test_their_inputs_are_validated_by_the_catalog():
    catalog = installed_catalog()
    with pytest.raises(ValidationError, match="top"):
        catalog.validate("word_count", {"text": "x", "top": 99})
    with pytest.raises(ValidationError, match="separator"):
        catalog.validate("slugify", {"title": "x", "separator": "/"})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        catalog.validate("slugify", {"title": "x", "colour": "red"})
