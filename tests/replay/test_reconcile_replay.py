"""Recorded ReconcileWorkflow histories replay against today's code without non-determinism.

Histories: tests/histories/reconcile (tests/replay/record_reconcile_history.py).
``manual`` pages through both passes with page size 2; ``scheduled`` is a second run of
the Schedule, which reads the first run's result (its ack watermark).
"""

from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from domain.reconcile_messages import ReconcileInput, ReconcileSummary
from tests.replay.recorded import Recorded
from tests.replay.recorded import replayer as recorded_replayer
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.timeout(60)

RECORDED = Recorded("reconcile")
MANIFEST: dict = RECORDED.manifest


history = RECORDED.history


def replayer(workflow_class: type = ReconcileWorkflow, runner=None) -> Replayer:  # noqa: ANN001
    return recorded_replayer(workflow_class, runner)


def activity_types(hist: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in hist.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.parametrize("name", sorted(MANIFEST))
async def test_recorded_history_replays(name):
    hist = history(name)
    result = await replayer().replay_workflow(hist)
    assert result.replay_failure is None
    types = activity_types(hist)
    assert types[-1] == "candidates.purge_orchestration_log"
    assert types.count("reconcile.describe_runs") == types.count("reconcile.record") >= 1


def test_manual_history_covers_paging_and_every_verdict():
    types = activity_types(history("manual"))
    assert types.count("reconcile.scan") >= 4  # several pages over two passes
    assert set(MANIFEST["manual"]["verdicts"].values()) == {"STALE", "LATE", "INCOMPLETE"}
    assert MANIFEST["scheduled"]["totals"]["findings_new"] == 0  # nothing new the 2nd time


@workflow.defn(name="ReconcileWorkflow", sandboxed=False)
class PurgeFirstReconcile:
    """A changed workflow: purges before it scans. Replay must refuse it."""

    @workflow.run
    async def run(self, inp: ReconcileInput | None = None) -> ReconcileSummary:
        await workflow.execute_activity(
            "candidates.purge_orchestration_log",
            result_type=int,
            start_to_close_timeout=timedelta(seconds=5),
        )
        raise ApplicationError("not reached in replay", non_retryable=True)


async def test_a_changed_workflow_fails_replay():
    with pytest.raises(NondeterminismError):
        await replayer(PurgeFirstReconcile).replay_workflow(history("manual"))
