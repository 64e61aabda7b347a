"""Patch skills-checked-at-open: the RunWorkflow histories recorded before it (the run
histories of the code before, and two runs whose steps the workflow itself refused: an
unknown skill, an input its skill refused) replay on the current code, which checks skills
in runs.open instead (tests/histories/run-before-skills-checked-at-open; replayed with the
other histories from before a patch, tests/replay/test_run_replay.py)."""

import pytest
from temporalio.api.enums.v1 import EventType

from tests.replay.recorded import Recorded
from workflows import patches

pytestmark = pytest.mark.timeout(60)

BEFORE = Recorded("run-before-skills-checked-at-open")


def test_the_refusals_inside_the_workflow_are_recorded():
    for name, skill in (("unknown_skill", "word_count"), ("bad_skill_input", "echo")):
        assert BEFORE.manifest[name]["result"] == {"workflow_failed": "ApplicationError"}
        history = BEFORE.history(name)
        types = [e.event_type for e in history.events]
        assert EventType.EVENT_TYPE_MARKER_RECORDED not in types  # failed before any command
        assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
        failure = history.events[-1].workflow_execution_failed_event_attributes.failure
        assert failure.application_failure_info.type == "InvalidRunInput"
        assert f"skill {skill!r}" in failure.message


def test_the_patch_is_not_in_the_histories_from_before_it():
    for name in BEFORE.manifest:
        found = [e.marker_recorded_event_attributes for e in BEFORE.history(name).events]
        patch_data = [m.details["patch-data"].payloads[0].data for m in found
                      if m.marker_name == "core_patch"]  # fmt: skip
        assert not any(patches.SKILLS_CHECKED_AT_OPEN.encode() in d for d in patch_data), name
