"""Recorded ReconcileWorkflow histories replay against today's code without non-determinism.

Histories: tests/histories/reconcile (tests/replay/record_reconcile_history.py).
``manual`` pages through all three passes with page size 2; ``scheduled`` is a second run
of the Schedule, which reads the first run's result (its ack watermark); both were
recorded before the patch ``purge-expired-rows`` (they end with the orchestration log).
``purge`` purges expired rows over several ``reconcile.purge_expired`` calls; ``failed``
writes its ``reconciliation.failed`` event (patch ``report-reconciliation-failure``) and
fails; ``continued`` is the first run of a chain that continues as new past its time
budget with bounded state (patch ``bounded-reconcile-state``), ``continued_last`` its last.
The histories recorded before the patch ``cross-check-open-runs`` (two passes, no
cross-check of open runs) are in tests/histories/reconcile-before-cross-check-open-runs and
replay too.
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
from workflows.patches import (
    BOUNDED_RECONCILE_STATE,
    PURGE_EXPIRED_ROWS,
    REPORT_RECONCILE_FAILURE,
)
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


RECONCILED = [(r, n) for r, n in ALL if n not in ("purge", "failed", "continued", "continued_last")]


@pytest.mark.parametrize(("recorded", "name"), ALL, ids=[f"{r.folder.name}/{n}" for r, n in ALL])
async def test_recorded_history_replays(recorded, name):
    result = await replayer().replay_workflow(recorded.history(name))
    assert result.replay_failure is None


@pytest.mark.parametrize(
    ("recorded", "name"), RECONCILED, ids=[f"{r.folder.name}/{n}" for r, n in RECONCILED]
)
def test_recorded_reconciliations_take_their_path(recorded, name):
    hist = recorded.history(name)
    types = activity_types(hist)
    described, recorded_pages = (
        types.count("reconcile.describe_runs"),
        types.count("reconcile.record"),
    )
    purged = any(PURGE_EXPIRED_ROWS in p for p in patches(hist))
    assert types[-1] == ("reconcile.purge_expired" if purged
                         else "candidates.purge_orchestration_log")  # fmt: skip
    if recorded is BEFORE:  # two passes: every page with runs is described, then recorded
        assert patches(hist) == [] and "reconcile.cross_check" not in types
        assert described == recorded_pages >= 1
    else:  # the new path: the patch marker, and a record after a cross-check that found some
        assert [CROSS_CHECK_OPEN_RUNS in p for p in patches(hist)][:1] == [True]
        assert types.count("reconcile.cross_check") >= 1
        assert recorded_pages >= described >= 1


def test_purge_history_purges_over_several_calls():
    """After the orchestration log: the patch marker, then reconcile.purge_expired until
    one call finds nothing more (two pages a call; seven pages in all)."""
    hist = history("purge")
    types = activity_types(hist)
    assert [PURGE_EXPIRED_ROWS in p for p in patches(hist)] == [False, True]
    first = types.index("reconcile.purge_expired")
    assert types[first - 1] == "candidates.purge_orchestration_log"
    assert types[first:] == ["reconcile.purge_expired"] * 4
    recorded = MANIFEST["purge"]
    assert recorded["purge_pages"] == 7 and all(recorded["purged"].values())
    assert hist.events[-1].HasField("workflow_execution_completed_event_attributes")


def test_failed_history_reports_the_failure_then_fails():
    hist = history("failed")
    types = activity_types(hist)
    assert types == ["reconcile.scan", "reconcile.report_failure"]
    assert [REPORT_RECONCILE_FAILURE in p for p in patches(hist)] == [False, True]
    assert hist.events[-1].HasField("workflow_execution_failed_event_attributes")
    assert MANIFEST["failed"]["workflow_failed"] == "ActivityError"


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


def test_a_continued_reconciliation_carries_bounded_state():
    first, last = history("continued"), history("continued_last")
    continued = first.events[-1].workflow_execution_continued_as_new_event_attributes
    assert continued.new_execution_run_id
    carried = ReconcileInput.model_validate_json(continued.input.payloads[0].data)
    assert len(carried.seen) <= carried.max_seen_carried == 1 and carried.cursor is not None
    for hist in (first, last):
        assert any(BOUNDED_RECONCILE_STATE in marker for marker in patches(hist))
    assert last.events[-1].HasField("workflow_execution_completed_event_attributes")
