"""The benchmark's BareWorkflow replays its recorded histories without non-determinism.

Histories: tests/histories/bare (tests/replay/record_bare_history.py).
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from runtime.worker_factory import workflow_runner
from tools.bench.bare import NOOP_ACTIVITY, BareInput, BareResult, BareWorkflow

pytestmark = pytest.mark.timeout(60)

HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "bare"
MANIFEST: dict = json.loads((HISTORIES / "scenarios.json").read_text())


def history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(
        MANIFEST[name]["workflow_id"], (HISTORIES / f"{name}.json").read_text()
    )


def replayer(workflow_class: type = BareWorkflow) -> Replayer:
    return Replayer(
        workflows=[workflow_class],
        workflow_runner=workflow_runner(),
        data_converter=pydantic_data_converter,
    )


def scheduled_activities(hist: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in hist.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.parametrize("name", sorted(MANIFEST))
async def test_recorded_history_replays(name):
    hist = history(name)
    result = await replayer().replay_workflow(hist, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    steps = MANIFEST[name]["steps"]
    assert scheduled_activities(hist) == [NOOP_ACTIVITY] * steps
    assert MANIFEST[name]["result"] == {"steps_done": steps}


@workflow.defn(name="BareWorkflow", sandboxed=False)
class OneMoreStep:
    """A changed workflow: one activity more than it was asked for. Replay must refuse it."""

    @workflow.run
    async def run(self, inp: BareInput) -> BareResult:
        for index in range(inp.steps + 1):
            await workflow.execute_activity(
                NOOP_ACTIVITY, index, start_to_close_timeout=timedelta(seconds=30)
            )
        return BareResult(steps_done=inp.steps + 1)


async def test_a_changed_workflow_fails_replay():
    with pytest.raises(NondeterminismError):
        await replayer(OneMoreStep).replay_workflow(history("three_steps"))
