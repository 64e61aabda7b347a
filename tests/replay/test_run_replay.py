"""Recorded RunWorkflow histories replay without non-determinism errors.

Histories: tests/histories/run (recorded by tests/replay/record_run_histories.py).
"""

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.worker_factory import workflow_runner
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(60)

HISTORIES = Path(__file__).resolve().parents[1] / "histories" / "run"
MANIFEST: dict = json.loads((HISTORIES / "scenarios.json").read_text())


def history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(
        MANIFEST[name]["workflow_id"], (HISTORIES / f"{name}.json").read_text()
    )


def test_the_paths_that_matter_are_recorded():
    statuses = {n: s["result"].get("status") for n, s in MANIFEST.items()}
    assert statuses["completed"] == "succeeded"
    assert statuses["denied"] == "failed_policy"
    assert statuses["governance_rolled_back"] == "failed"
    assert MANIFEST["governance_rolled_back"]["result"]["rolled_back"] is True
    assert statuses["stopped_while_paused"] == "cancelled"
    assert MANIFEST["cancelled_while_paused"]["result"] == {"workflow_failed": "CancelledError"}
    assert MANIFEST["invalid_input"]["result"] == {"workflow_failed": "ApplicationError"}


@pytest.mark.parametrize("name", sorted(MANIFEST))
async def test_history_replays(name):
    replayer = Replayer(
        workflows=[RunWorkflow],
        workflow_runner=workflow_runner(),
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history(name), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
