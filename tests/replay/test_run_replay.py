"""Recorded RunWorkflow histories replay without non-determinism errors.

Histories: tests/histories/run (recorded by tests/replay/record_run_histories.py).
"""

import pytest

from tests.replay.recorded import Recorded, replayer
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(60)

RUNS = Recorded("run")


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


@pytest.mark.parametrize("name", sorted(RUNS.manifest))
async def test_history_replays(name):
    result = await replayer(RunWorkflow).replay_workflow(
        RUNS.history(name), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure
