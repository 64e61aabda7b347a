"""OBSERVABILITY_MODE when the trace cannot be started: STRICT, DEGRADED, PERMISSIVE.

The trace store is made to fail by registering, under the activity name
``traces.start``, an activity that raises — the usual way to inject a fault.
"""

import httpx
import pytest
from temporalio import activity

from db.models import AuditExpectation, Incident, OutboxEvent, Run, Trace, TraceStep
from runtime.worker_factory import build_activities
from tests.helpers import (
    count,
    echo_steps,
    markers,
    new_tenant,
    rows,
    running_worker,
    start_run,
)

pytestmark = pytest.mark.timeout(90)


@activity.defn(name="traces.start")
def trace_store_down(_req: dict) -> None:
    raise ConnectionError("trace store unreachable")


def activities_with_broken_trace(settings, sessions):
    with httpx.Client() as http:
        real = build_activities(settings, sessions, http)
    return [
        a for a in real if activity._Definition.must_from_callable(a).name != "traces.start"
    ] + [trace_store_down]


@pytest.mark.parametrize("mode", ["STRICT", "DEGRADED", "PERMISSIVE"])
async def test_trace_failure_by_mode(dev_env, settings, sessions, task_queue, run_id, mode):
    # The tenant's mode (a run's option could only tighten it: PERMISSIVE would loosen).
    tenant = new_tenant(sessions, governance={"observability_mode": mode})
    acts = activities_with_broken_trace(settings, sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(
            dev_env.client, task_queue, run_id,
            {"tenant_id": tenant, "steps": echo_steps(2)},
        )  # fmt: skip
        result = await handle.result()
        local = [name for kind, name in await markers(handle) if kind == "core_local_activity"]
    run = rows(sessions, Run, id=run_id)[0]
    assert count(sessions, Trace, run_id=run_id) == 0
    assert count(sessions, TraceStep, run_id=run_id) == 0
    if mode == "STRICT":
        assert (result.phase, result.status) == ("FAILED", "failed")
        assert "trace store unreachable" in result.reason and "STRICT" in result.reason
        assert [i.category for i in rows(sessions, Incident, source_run_id=run_id)] == [
            "RUN_FAILURE"
        ]
        assert run.steps_done == 0
    else:
        assert (result.phase, result.status) == ("COMPLETED", "succeeded")
        assert result.steps_done == 2
        assert count(sessions, Incident, source_run_id=run_id) == 0
    expected_status = "DEGRADED" if mode == "DEGRADED" else "OK"
    assert run.observability_status == expected_status
    if mode == "DEGRADED":
        assert "trace store unreachable" in run.observability_error
    # Only a DEGRADED run says so (an event the audit handlers turn into an alert).
    degraded = rows(sessions, OutboxEvent, run_id=run_id, topic="trace.degraded")
    assert len(degraded) == (1 if mode == "DEGRADED" else 0)
    if degraded:
        assert "trace store unreachable" in degraded[0].payload["error"]
    # Whatever the mode, the audit contract is closed: nothing left open.
    open_rows = [e for e in rows(sessions, AuditExpectation, run_id=run_id)
                 if e.acked_at is None and e.withdrawn_at is None]  # fmt: skip
    assert open_rows == []
    # No trace completion to read it: an untraced run reconciles itself on its own.
    assert local.count("audit.reconcile_run") == (0 if mode == "STRICT" else 1)
