"""`starter.py skills`: the catalog the CLI's process discovered, and the entry points that
failed to load, in a process whose path holds a broken plugin."""

import json
import os
import sys
from pathlib import Path

from domain.skill_discovery import installed_catalog
from tests.plugins.plugin_support import write_distribution
from tests.process_output import processes_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_skills_lists_the_catalog_as_text_and_json(capsys):
    from cli.main import main

    assert main(["skills"]) == 0
    text = capsys.readouterr().out
    count = len(installed_catalog().names)
    assert text.startswith(f"{count} skills installed\n")
    assert ("  word_count 0.1.0 (governed-runs-example-skills): Counts the words of a text and "
            "names the commonest.\n      input: text, top?; cost: fixed 0.00002; time limit 10 s"
            ) in text  # fmt: skip
    assert (
        "  llm 0.1.0 (built-in): " in text and "cost: metered; time limit 270 s; calls out" in text
    )
    assert "failed to load" not in text

    assert main(["skills", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == json.loads(json.dumps(installed_catalog().describe()))
    assert listed["failed"] == []
    [slugify] = [s for s in listed["skills"] if s["name"] == "slugify"]
    assert slugify["input_schema"]["required"] == ["title"]
    assert slugify["source"] == "governed-runs-example-skills"


def test_skills_shows_a_plugin_that_failed_to_load(processes, tmp_path):
    (tmp_path / "broken_plugin.py").write_text("import no_such_dependency\n")
    write_distribution(tmp_path, "other-plugin", {
        "exploding": "broken_plugin:SKILL",
        "word_count": "example_skills:WORD_COUNT"})  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    env.pop("DATABASE_URL", None)
    env["DATA_DIR"] = str(tmp_path / "data")
    done = processes.run("starter.py skills", [sys.executable, "starter.py", "skills"],
                         cwd=ROOT, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("  FAILED")]
    assert failed == [
        "  FAILED exploding = broken_plugin:SKILL (other-plugin): failed to import: "
        "ModuleNotFoundError: No module named 'no_such_dependency'",
        "  FAILED word_count = example_skills:WORD_COUNT (other-plugin): duplicate skill name "
        "'word_count': already registered by governed-runs-example-skills "
        "(word_count = example_skills:WORD_COUNT)",
    ]
    assert "2 failed to load" in done.stdout
    assert "  word_count 0.1.0 (governed-runs-example-skills)" in done.stdout  # the first kept
    # the process names each one in its log as well
    assert ("skill entry point 'exploding = broken_plugin:SKILL' of other-plugin not loaded: "
            "failed to import: ModuleNotFoundError") in done.stderr  # fmt: skip

    argv = [sys.executable, "starter.py", "skills", "--json"]
    as_json = processes.run("starter.py skills --json", argv, cwd=ROOT, env=env)
    failed = json.loads(as_json.stdout)["failed"]
    assert [(f["entry_point"], f["distribution"]) for f in failed] == [
        ("exploding = broken_plugin:SKILL", "other-plugin"),
        ("word_count = example_skills:WORD_COUNT", "other-plugin")]  # fmt: skip
