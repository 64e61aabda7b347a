"""Recorded agent runs (tests/histories/run, scenarios agent_tools and agent_refused of
tests/replay/record_run_histories.py) replay deterministically: the loop is decided from the
recorded results only. What they recorded: a step activity per model call and per tool
call, one tool call prevented by a rule, one refused as a tool the agent does not have."""

import json

import pytest
from temporalio.api.enums.v1 import EventType

from tests.replay.recorded import Recorded, replayer
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(60)

RUNS = Recorded("run")
AGENT_RUNS = ("agent_tools", "agent_refused")


def step_requests(name: str) -> list[dict]:
    """The StepRequests of the recorded run's step activities, in order."""
    found = []
    for event in RUNS.history(name).events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name == "steps.execute":
            found.append(json.loads(attrs.input.payloads[0].data))
    return found


def test_the_agent_runs_are_recorded_with_each_call_a_step():
    tools = RUNS.manifest["agent_tools"]["result"]
    assert (tools["status"], tools["steps_done"]) == ("failed_policy", 3)
    assert "prevented by rule 'no-template' (BLOCKED): step 3 (template)" in tools["reason"]
    # The model, its first tool, the model again, then the tool the rule stopped.
    assert [r["skill"] for r in step_requests("agent_tools")] == ["llm", "echo", "llm",
                                                                   "template"]  # fmt: skip
    refused = RUNS.manifest["agent_refused"]["result"]
    assert (refused["status"], refused["steps_done"]) == ("succeeded", 5)
    requests = step_requests("agent_refused")
    assert [(r["skill"], r["index"]) for r in requests] == [
        ("llm", 0), ("agent", 1), ("echo", 2), ("llm", 3), ("echo", 4)]  # fmt: skip
    assert requests[1]["refusal"].startswith("refused: 'delete_everything' is not a tool")
    assert requests[4]["input"] == {"text": "done without it"}  # the agent's answer, referenced


@pytest.mark.parametrize("name", AGENT_RUNS)
async def test_an_agent_history_replays(name):
    result = await replayer(RunWorkflow).replay_workflow(
        RUNS.history(name), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure
