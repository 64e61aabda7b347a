"""Recorded ReconcileWorkflow histories replay against today's code without non-determinism.

Histories: tests/histories/reconcile (tests/replay/record_reconcile_history.py).
``manual`` pages through all three passes with page size 2; ``scheduled`` is a second run
of the Schedule, which reads the first run's result (its ack watermark). The histories
recorded before the patch ``cross-check-open-runs`` (two passes, no cross-check of open
runs) are in tests/histories/reconcile-before-cross-check-open-runs and replay too.
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
from workflows.reconcile import CROSS_CHECK_OPEN_RUNS, ReconcileWorkflow

pytestmark = pytest.mark.timeout(60)

RECORDED = Recorded("reconcile")
BEFORE = Recorded("reconcile-before-cross-check-open-runs")
MANIFEST: dict = RECORDED.manifest
ALL = [(RECORDED, name) for name in sorted(MANIFEST)] + [
    (BEFORE, name) for name in sorted(BEFORE.manifest)
]


history = RECORDED.history


def replayer(workflow_class: type = ReconcileWorkflow, runner=None) -> Replayer:  # noqa: ANN001
    return recorded_replayer(workflow_class, runner)


def activity_types(hist: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in hist.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


def patches(hist: WorkflowHistory) -> list[str]:
    return [
        e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data.decode()
        for e in hist.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


@pytest.mark.parametrize(("recorded", "name"), ALL, ids=[f"{r.folder.name}/{n}" for r, n in ALL])
async def test_recorded_history_replays(recorded, name):
    hist = recorded.history(name)
    result = await replayer().replay_workflow(hist)
    assert result.replay_failure is None
    types = activity_types(hist)
    assert types[-1] == "candidates.purge_orchestration_log"
    described, recorded_pages = (
        types.count("reconcile.describe_runs"),
        types.count("reconcile.record"),
    )
    if recorded is BEFORE:  # two passes: every page with runs is described, then recorded
        assert patches(hist) == [] and "reconcile.cross_check" not in types
        assert described == recorded_pages >= 1
    else:  # the new path: the patch marker, and a record after a cross-check that found some
        assert [CROSS_CHECK_OPEN_RUNS in p for p in patches(hist)] == [True]
        assert types.count("reconcile.cross_check") >= 1
        assert recorded_pages >= described >= 1


def test_manual_history_cross_checks_open_runs():
    """The run terminated while paused (nothing of it overdue) is found by the cross-check
    alone; the paused one, still running, is asked about and left alone."""
    manual = MANIFEST["manual"]
    assert manual["verdicts"]["rec-closed-while-paused"] == "STALE"
    assert "rec-paused" not in manual["verdicts"]
    assert manual["totals"]["runs_failed"] == 2  # rec-stale (overdue) and the paused one
    assert manual["totals"]["open_runs_checked"] >= 2
    assert MANIFEST["scheduled"]["totals"]["runs_failed"] == 0  # nothing the 2nd time


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
