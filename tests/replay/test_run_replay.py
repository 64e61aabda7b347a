"""Recorded RunWorkflow histories replay without non-determinism errors.

Histories: tests/histories/run (recorded by tests/replay/record_run_histories.py) and,
for every patch of workflows.patches, the histories recorded before it: a run started
on the earlier code must replay on the current one.
"""

import json

import pytest
from temporalio.api.enums.v1 import EventType

from tests.replay.recorded import Recorded, replayer
from workflows import patches
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(60)

RUNS = Recorded("run")
BEFORE_PATCHES = {
    patches.FEWER_LOCAL_ACTIVITIES: Recorded("run-before-fewer-local-activities"),
    patches.REFUSE_LATE_RESUMES: Recorded("run-before-refuse-late-resumes"),
    patches.FAILED_RUNS_FAIL: Recorded("run-before-failed-runs-fail"),
    patches.EVERY_FAILURE_PUBLISHED: Recorded("run-before-every-failure-published"),
    patches.DURABLE_WRITES: Recorded("run-before-durable-writes"),
    patches.SKILLS_CHECKED_AT_OPEN: Recorded("run-before-skills-checked-at-open"),
    patches.LATE_CONTROL_REFUSED: Recorded("run-before-late-control-refused"),
    patches.RUN_TIMEOUT_ENFORCED: Recorded("run-before-run-timeout-enforced"),
    patches.CONTINUE_AS_NEW_WHEN_SUGGESTED: Recorded("run-before-continue-as-new-when-suggested"),
}


def test_the_paths_that_matter_are_recorded():
    manifest = RUNS.manifest
    statuses = {n: s["result"].get("status") for n, s in manifest.items()}
    assert statuses["completed"] == "succeeded"
    assert statuses["denied"] == "failed_policy"
    assert statuses["governance_rolled_back"] == "failed"
    assert manifest["governance_rolled_back"]["result"]["rolled_back"] is True
    assert statuses["stopped_while_paused"] == "cancelled"
    assert manifest["cancelled_while_paused"]["result"] == {"workflow_failed": "CancelledError"}
    assert manifest["invalid_input"]["result"] == {"workflow_failed": "ApplicationError"}
    # Prevention before a step, and an option refused at open.
    assert (statuses["step_blocked_by_rule"], manifest["step_blocked_by_rule"]["result"][
        "steps_done"]) == ("failed_policy", 1)  # fmt: skip
    assert "prevented by the budget" in manifest["step_prevented_by_budget"]["result"]["reason"]
    assert manifest["loosening_option_refused"]["result"] == {"workflow_failed": "ApplicationError"}
    assert (statuses["approved_step"], manifest["approved_step"]["result"]["steps_done"]) == (
        "succeeded", 2)  # fmt: skip
    # Data between steps: the second step used the first's output, the third's reference
    # named what the output does not have (the run failed before it ran).
    assert (statuses["data_flow"], manifest["data_flow"]["result"]["steps_done"]) == (
        "failed", 2)  # fmt: skip
    # A long run that continued as new twice; each Temporal run's history is replayed.
    assert (statuses["continued_as_new"], manifest["continued_as_new"]["result"]["steps_done"]) == (
        "succeeded", 47)  # fmt: skip
    assert {"continued_as_new_2", "continued_as_new_3"} <= set(manifest)


def activity_types(history) -> list[str]:
    """The activities a history ran, regular and local, in order."""
    found = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            found.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.marker_recorded_event_attributes.marker_name == "core_local_activity":
            data = e.marker_recorded_event_attributes.details["data"].payloads[0].data
            found.append(json.loads(data)["activity_type"])
    return found


def test_a_continued_run_starts_where_the_last_one_ended():
    """The first history ends in a continue-as-new; the next starts with the run's input and
    its continuation, opens nothing and starts no trace, and goes on at the next step; the
    last one governs and finalizes the run, once."""
    runs = [RUNS.history(n) for n in ("continued_as_new", "continued_as_new_2",
                                      "continued_as_new_3")]  # fmt: skip
    continued = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert [h.events[-1].event_type == continued for h in runs] == [True, True, False]
    started = runs[1].events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id  # Temporal continued it: the continuation holds
    assert len(started.input.payloads) == 2  # the input and the continuation
    carried = json.loads(started.input.payloads[1].data)
    assert carried["segment"] == 1 and carried["next_index"] > 1
    assert carried["outputs"] == {"first": {"text": "from run 1"}}
    types = [activity_types(h) for h in runs]
    assert types[0][0] == "runs.open" and "traces.start" in types[0]
    for later in types[1:]:
        assert "runs.open" not in later and "traces.start" not in later
    assert [t.count("runs.finalize") for t in types] == [0, 0, 1]
    assert sum(t.count("steps.execute") for t in types) >= 47  # each step once (+ the held one)


@pytest.mark.parametrize("name", sorted(RUNS.manifest))
async def test_history_replays(name):
    result = await replayer(RunWorkflow).replay_workflow(
        RUNS.history(name), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure


@pytest.mark.parametrize(
    ("patch", "name"),
    [(patch, name) for patch, recorded in BEFORE_PATCHES.items() for name in recorded.manifest],
)
async def test_history_from_before_a_patch_replays(patch, name):
    result = await replayer(RunWorkflow).replay_workflow(
        BEFORE_PATCHES[patch].history(name), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure


def patch_ids(history) -> set[str]:
    return {
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    }


def test_new_histories_take_the_patched_path():
    for patch, before in BEFORE_PATCHES.items():
        assert patch in patch_ids(RUNS.history("completed"))
        assert patch not in patch_ids(before.history("completed"))
