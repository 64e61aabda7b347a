"""What the worker's registry makes of a skill's function (activities.skills.registry): an
exception, a value that is not JSON, an async skill past its time limit, a cost model; and
the functions the built-in skills name are resolved."""

from decimal import Decimal

import pytest

from activities.skills.errors import SkillError
from activities.skills.registry import MAX_OUTPUT_BYTES, SkillRegistry, json_object
from domain.skill_catalog import BUILT_IN_CATALOG
from runtime.settings import Settings
from runtime.worker_factory import skill_context
from tests.plugins.plugin_support import misbehaving_catalog


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> SkillRegistry:
    return SkillRegistry(misbehaving_catalog(tmp_path_factory.mktemp("plugins")))


@pytest.fixture(scope="module")
def ctx():
    return skill_context(Settings(_env_file=None))


def test_the_built_in_functions_resolve(ctx):
    registry = SkillRegistry(BUILT_IN_CATALOG)
    assert registry.names == ["echo", "http", "llm", "template"]
    out = registry.run("echo", {"text": "hi"}, ctx, ctx.base_cost)
    assert (out.output, out.cost) == ({"text": "hi"}, ctx.base_cost)
    assert registry.calls_out("http") and not registry.calls_out("echo")
    # llm reserves its worst case: more than the base cost for a long prompt
    assert registry.reserve("llm", {"prompt": "x" * 4000}, ctx) > ctx.base_cost


def test_an_exception_is_a_final_error_naming_skill_type_and_message(registry, ctx):
    with pytest.raises(SkillError) as raised:
        registry.run("boom", {}, ctx, ctx.base_cost)
    assert str(raised.value) == "skill 'boom' raised ValueError: the plugin broke"
    assert raised.value.retryable is False


def test_a_value_that_is_not_json_is_a_final_error_naming_where(registry, ctx):
    with pytest.raises(SkillError) as raised:
        registry.run("not_json", {}, ctx, ctx.base_cost)
    assert (
        str(raised.value)
        == "skill 'not_json' returned a value that is not JSON: output.tags is a set"
    )
    assert raised.value.retryable is False


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"x": float("nan")}, "output.x is nan (not a JSON number)"),
        ({"x": [1, b"raw"]}, "output.x[1] is a bytes"),
        ({"x": {1: "a"}}, "output.x has a key 1 that is not a string"),
        ({"x": "a\x00b"}, "output.x holds a NUL character"),
        ({"x": "y" * MAX_OUTPUT_BYTES}, f"bytes of JSON; at most {MAX_OUTPUT_BYTES}"),
    ],
)
def test_what_a_step_could_not_record_is_refused(value, problem):
    with pytest.raises(SkillError, match="returned a value that is not JSON") as raised:
        json_object("s", value)
    assert problem in str(raised.value)


def test_json_values_and_models_become_the_output(registry, ctx):
    assert json_object("s", {"a": [1, 2.5, None, True, "x"]}) == {"a": [1, 2.5, None, True, "x"]}
    out = registry.run("tally", {}, ctx, Decimal("0.5"))  # returns 7: {"result": 7}
    assert (out.output, out.cost) == ({"result": 7}, Decimal("0.5"))
    assert registry.reserve("tally", {}, ctx) == Decimal("0.5")  # its fixed cost


def test_an_async_skill_past_its_time_limit_is_cancelled(registry, ctx):
    with pytest.raises(SkillError) as raised:
        registry.run("hang_async", {}, ctx, ctx.base_cost)
    assert str(raised.value) == "skill 'hang_async' did not return within 1 s (hung)"


def test_an_unknown_skill_or_a_bad_input(registry, ctx):
    with pytest.raises(SkillError, match="skill 'gone' is not installed on this worker") as raised:
        registry.run("gone", {}, ctx, ctx.base_cost)
    assert raised.value.retryable  # another worker of the queue may have it
    assert registry.reserve("gone", {}, ctx) == ctx.base_cost
    with pytest.raises(SkillError, match="slow: invalid input: seconds: Field required"):
        registry.run("slow", {}, ctx, ctx.base_cost)


def test_a_function_that_cannot_be_resolved_is_logged_and_left_out(caplog, ctx):
    from domain.skill_catalog import CatalogEntry, Skill, SkillCatalog
    from tests.plugins.misbehaving_skills import Nothing

    lost = Skill("lost", Nothing, "no_such_module:run")
    entry = CatalogEntry(lost, "lost-dist", "1.0", "lost = x:LOST")
    catalog = SkillCatalog({**BUILT_IN_CATALOG.entries, "lost": entry})
    with caplog.at_level("ERROR", logger="activities.skills.registry"):
        registry = SkillRegistry(catalog)
    assert "lost" not in registry.names and "echo" in registry.names
    assert ("skill 'lost' (lost = x:LOST) not loaded: cannot resolve its function: "
            "ModuleNotFoundError: No module named 'no_such_module'") in caplog.text  # fmt: skip
    with pytest.raises(SkillError, match="skill 'lost' is not installed on this worker"):
        registry.run("lost", {}, ctx, ctx.base_cost)
