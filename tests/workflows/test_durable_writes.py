"""Writes survive an outage of the database without growing history (patch durable-writes),
on the real dev server and both databases.

The outage: an activity whose database refuses connections (a real refused connection to a
closed port, OperationalError) for some seconds from its first call; the worker's
interceptor makes it DatabaseUnavailable. Before the patch a governance write rolled back a
run that had succeeded after 5 such attempts (~3 s), and a must-write retried locally
without end, a workflow-task heartbeat every few seconds.
"""

import asyncio
import functools
import time
from datetime import timedelta

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from db.models import DomainAck, PolicyEvaluation, Run
from runtime.worker_factory import build_activities
from tests.faults import activities_with_outages, name_of
from tests.helpers import echo_steps, markers, new_tenant, rows, running_worker, start_run
from workflows import durable_writes

pytestmark = pytest.mark.timeout(120)

OUTAGE = 8.0  # seconds: longer than every local attempt together (DB_WRITE: ~3 s)


async def events_of(handle: WorkflowHandle) -> list:
    return (await handle.fetch_history()).events


def scheduled(events: list, activity_type: str) -> list:
    """The regular activities of that type the run scheduled, with their attempts."""
    ids = {e.event_id for e in events
           if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
           and e.activity_task_scheduled_event_attributes.activity_type.name == activity_type
           }  # fmt: skip
    return [e.activity_task_started_event_attributes.attempt for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id in ids]  # fmt: skip


def assert_once(sessions, run_id: str) -> None:
    acks = [(a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id)]
    assert len(acks) == len(set(acks)), acks


@pytest.mark.parametrize("write", ["policies.evaluate", "traces.complete"])
async def test_a_governance_write_waits_out_an_outage_instead_of_rolling_back(
    dev_env, settings, sessions, task_queue, run_id, write
):
    tenant = new_tenant(sessions)
    acts = activities_with_outages(settings, sessions, {write: OUTAGE})
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        result = await handle.result()
        events = await events_of(handle)
    assert (result.phase, result.status, result.rolled_back) == ("COMPLETED", "succeeded", False), (
        result.reason
    )
    # Its local attempts failed; then one regular activity, retried by the server until the
    # database answered: one ActivityTaskStarted (its last attempt), however long it took.
    attempts = scheduled(events, write)
    assert len(attempts) == 1 and attempts[0] > 1, attempts
    assert [e.status for e in rows(sessions, PolicyEvaluation, run_id=run_id)] == ["COMMITTED"]
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status) == ("COMPLETED", "succeeded") and run.finalized_at
    assert_once(sessions, run_id)


async def test_finalize_waits_out_an_outage_and_the_history_does_not_grow(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    acts = activities_with_outages(settings, sessions, {"runs.finalize": OUTAGE})
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)},
                                 task_timeout=timedelta(seconds=2))  # fmt: skip
        result = await handle.result()
        events = await events_of(handle)
    assert (result.phase, result.status) == ("COMPLETED", "succeeded")
    assert len(scheduled(events, "runs.finalize")) == 1
    # No workflow-task heartbeats while it waited: a 2 s task timeout would have made one
    # every ~1.6 s of a local activity retried for 8 s.
    tasks = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
    assert len(tasks) <= 12, len(tasks)
    run = rows(sessions, Run, id=run_id)[0]
    assert run.finalized_at is not None
    assert_once(sessions, run_id)


async def test_a_bug_in_a_write_fails_the_workflow_task_and_a_fixed_worker_finishes_the_run(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    buggy = activities_with_outages(settings, sessions, {}, bugs={"runs.finalize": "ValueError"})
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=buggy):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(1)})  # fmt: skip
        for _ in range(200):  # the workflow task fails: the run stays open, unfinalized
            failed = [e for e in await events_of(handle)
                      if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]  # fmt: skip
            if failed:
                break
            await asyncio.sleep(0.1)
        assert failed, "no workflow task failed"
        message = failed[0].workflow_task_failed_event_attributes.failure.message
        assert "runs.finalize" in message or "finalize" in message, message
        assert "ValueError" in message and "injected bug" in message, message
        assert (await handle.describe()).status.name == "RUNNING"
    assert rows(sessions, Run, id=run_id)[0].finalized_at is None
    # The fix is deployed: a worker with the real activities takes the retried task.
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        result = await handle.result()
    assert (result.phase, result.status) == ("COMPLETED", "succeeded")
    assert rows(sessions, Run, id=run_id)[0].finalized_at is not None
    assert_once(sessions, run_id)


def hanging_locally(real, seconds: float):
    """``real`` whose local attempts hang ``seconds`` before they write (a database that
    answers late): each of them outlives its (shortened) start-to-close timeout, then
    commits; the regular activity after them finds the write in the ledger."""

    @functools.wraps(real)
    def wrapper(*args):
        if activity.info().is_local:
            time.sleep(seconds)
        return real(*args)

    return wrapper


async def test_a_write_whose_local_attempts_time_out_is_waited_out(
    dev_env, settings, sessions, task_queue, run_id, monkeypatch
):
    """A database that hangs rather than refuses: runs.finalize's local attempts time out
    (their TimeoutError reaches the workflow as an ActivityError, neither a bug nor a
    rejection); one regular activity finishes it, and the write is there once although
    every timed-out attempt committed."""
    monkeypatch.setitem(durable_writes.WRITE_LOCAL, "start_to_close_timeout",
                        timedelta(seconds=0.5))  # fmt: skip
    tenant = new_tenant(sessions)
    with httpx.Client() as http:
        real = build_activities(settings, sessions, http)
    acts = [hanging_locally(fn, 0.8) if name_of(fn) == "runs.finalize" else fn for fn in real]
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        result = await handle.result()
        events = await events_of(handle)
    assert (result.phase, result.status) == ("COMPLETED", "succeeded")
    assert len(scheduled(events, "runs.finalize")) == 1  # after the local attempts timed out
    local = [what for kind, what in await markers(handle) if kind == "core_local_activity"]
    assert local.count("runs.finalize") == 1  # one marker: its last local attempt's failure
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status) == ("COMPLETED", "succeeded") and run.finalized_at
    assert_once(sessions, run_id)
