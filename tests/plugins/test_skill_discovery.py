"""Discovery of the skills (domain.skill_discovery) from real entry points: the installed
ones (the built-in skills and the example plugin) and distributions written to a temporary
directory: one that fails to import, a duplicate name, objects that are no skill."""

import logging
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from domain.skill_catalog import BUILT_IN, ENTRY_POINT_GROUP, SkillCatalog
from domain.skill_discovery import discover, installed_catalog
from tests.plugins.plugin_support import entry_points_under, installed_with, write_distribution

ROOT = Path(__file__).resolve().parents[2]
BUILT_INS = {"echo", "template", "http", "llm"}
WORKFLOW_SKILLS = {"agent"}  # in every catalog, registered by no entry point (RunWorkflow's)


def test_the_built_in_skills_are_entry_points_of_the_project():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert set(declared[ENTRY_POINT_GROUP]) == BUILT_INS
    ours = {ep.name for ep in metadata.distribution("governed-runs").entry_points
            if ep.group == ENTRY_POINT_GROUP}  # fmt: skip
    assert ours == BUILT_INS, "reinstall the project (make install) to register them"
    catalog = discover()
    built_in = {n for n, e in catalog.entries.items() if e.source == BUILT_IN}
    assert built_in == BUILT_INS | WORKFLOW_SKILLS
    assert catalog.entries["echo"].entry_point == "echo = domain.skill_catalog:ECHO"
    assert catalog.entries["echo"].version == metadata.version("governed-runs")


def test_the_example_plugin_is_discovered_with_its_distribution_and_version():
    catalog = installed_catalog()
    for name in ("word_count", "slugify"):
        entry = catalog.entries[name]
        assert entry.source == "governed-runs-example-skills"
        assert entry.version == metadata.version("governed-runs-example-skills")
    assert catalog.failures == ()
    assert catalog.describe()["skills"][0]["name"] == "agent"  # by name


def _broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A distribution whose module raises when imported, beside one that imports."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('no config file here')\n")
    write_distribution(tmp_path, "broken-plugin", {"exploding": "broken_plugin:SKILL",
                                                   "absent": "no_such_module:SKILL"})  # fmt: skip
    return tmp_path


def test_an_entry_point_that_fails_to_import_is_named_and_left_out(tmp_path, monkeypatch,
                                                                   caplog):  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="domain.skill_discovery"):
        catalog = installed_with(_broken(tmp_path, monkeypatch))
    assert {"exploding", "absent"}.isdisjoint(catalog.entries)
    assert {"word_count", *BUILT_INS} <= set(catalog.entries)  # the rest still loads
    failures = {f.entry_point: f for f in catalog.failures}
    exploding = failures["exploding = broken_plugin:SKILL"]
    assert exploding.distribution == "broken-plugin"
    assert exploding.error == "failed to import: RuntimeError: no config file here"
    assert failures["absent = no_such_module:SKILL"].error.startswith(
        "failed to import: ModuleNotFoundError: No module named 'no_such_module'")  # fmt: skip
    logged = [r.getMessage() for r in caplog.records]
    assert ("skill entry point 'exploding = broken_plugin:SKILL' of broken-plugin not loaded: "
            "failed to import: RuntimeError: no config file here") in logged  # fmt: skip


def test_a_duplicate_name_from_another_distribution_is_refused_naming_both(tmp_path):
    write_distribution(
        tmp_path / "a", "aaa-skills", {"tally": "tests.plugins.misbehaving_skills:TALLY"}
    )
    write_distribution(tmp_path / "b", "bbb-skills", {
        "tally": "tests.plugins.misbehaving_skills:TALLY",
        "echo": "domain.skill_catalog:ECHO"})  # fmt: skip
    eps = [*entry_points_under(tmp_path / "b"), *entry_points_under(tmp_path / "a")]
    catalog = discover([*metadata.entry_points(group=ENTRY_POINT_GROUP), *eps])
    assert catalog.entries["tally"].source == "aaa-skills"  # by distribution name, not order
    assert catalog.entries["echo"].source == BUILT_IN  # a plugin never replaces a built-in
    errors = {f.entry_point: (f.distribution, f.error) for f in catalog.failures}
    assert errors == {
        "tally = tests.plugins.misbehaving_skills:TALLY": (
            "bbb-skills", "duplicate skill name 'tally': already registered by aaa-skills "
            "(tally = tests.plugins.misbehaving_skills:TALLY)"),
        "echo = domain.skill_catalog:ECHO": (
            "bbb-skills", "duplicate skill name 'echo': already registered by built-in "
            "(echo = domain.skill_catalog:ECHO)"),
    }  # fmt: skip


def test_objects_that_are_no_skill_are_refused_with_the_reason(tmp_path):
    write_distribution(tmp_path, "odd-skills", {
        "dict_skill": "tests.plugins.misbehaving_skills:NOT_A_SKILL",
        "misnamed": "tests.plugins.misbehaving_skills:MISNAMED",
        "bad": "tests.plugins.misbehaving_skills:BAD_DECLARATION",
        "gone": "tests.plugins.misbehaving_skills:NO_SUCH_ATTRIBUTE"})  # fmt: skip
    catalog = discover(entry_points_under(tmp_path))
    errors = {f.entry_point.split(" =")[0]: f.error for f in catalog.failures}
    assert errors["dict_skill"] == "names a dict, not a domain.skill_catalog.Skill"
    assert (
        errors["misnamed"] == "declares skill 'other_name', not 'misnamed' (the entry point's name)"
    )
    assert errors["bad"].split("; ") == [
        "name 'Bad Name' is not a skill name (pattern ^[a-z][a-z0-9_]{0,62}$)",
        "input <class 'dict'> is not a pydantic model class",
        "run is neither a callable nor a 'module:attribute' string",
        "timeout_seconds 0 is not in (0, 270]",
        "declares skill 'Bad Name', not 'bad' (the entry point's name)",
    ]
    assert errors["gone"].startswith("failed to import: AttributeError:")
    assert set(catalog.entries) == BUILT_INS | WORKFLOW_SKILLS  # only what was declared well


def test_without_registered_built_ins_they_are_still_there_and_first(tmp_path, caplog):
    """A checkout installed before the entry points existed: warned, the built-ins kept."""
    tally = "tests.plugins.misbehaving_skills:TALLY"
    write_distribution(
        tmp_path, "late-skills", {"echo": "domain.skill_catalog:ECHO", "tally": tally}
    )
    with caplog.at_level(logging.WARNING, logger="domain.skill_discovery"):
        catalog = discover(entry_points_under(tmp_path))
    assert catalog.entries["echo"].source == BUILT_IN
    assert catalog.entries["tally"].source == "late-skills"
    assert [f.entry_point for f in catalog.failures] == ["echo = domain.skill_catalog:ECHO"]
    assert any("make install" in r.getMessage() for r in caplog.records)


def test_the_catalog_validates_and_describes():
    catalog: SkillCatalog = installed_catalog()
    assert catalog.validate("word_count", {"text": "a b"}).model_dump() == {"text": "a b", "top": 3}
    known = r"unknown skill 'nope' \(known skills: agent, echo, http, "
    with pytest.raises(ValueError, match=known):
        catalog.validate("nope", {})
    [word_count] = [s for s in catalog.describe()["skills"] if s["name"] == "word_count"]
    assert word_count["cost_model"] == {"kind": "fixed", "amount": "0.00002"}
    assert word_count["input_schema"]["required"] == ["text"]
    assert word_count["timeout_seconds"] == 10
    [llm] = [s for s in catalog.describe()["skills"] if s["name"] == "llm"]
    assert llm["cost_model"]["kind"] == "metered" and llm["calls_out"] is True


def test_the_agent_is_the_workflows_and_no_plugin_takes_its_name(tmp_path):
    write_distribution(tmp_path, "agent-skills", {"agent": "domain.skill_catalog:AGENT"})
    catalog = discover(entry_points_under(tmp_path))
    entry = catalog.entries["agent"]
    assert (entry.source, entry.entry_point) == (BUILT_IN, "agent (driven by RunWorkflow)")
    assert entry.describe()["cost_model"] == {"kind": "fixed", "amount": "0"}
    [failure] = [f for f in catalog.failures if f.entry_point.startswith("agent =")]
    assert "duplicate skill name 'agent': already registered by built-in" in failure.error
