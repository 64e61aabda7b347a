"""Control with an answer: the pause_run / resume_run / stop_run Updates (real dev server).

A refused update is rejected by its validator: the caller gets the reason at once and the
run's history gets no event (so refusals cannot grow it); an accepted one returns the
run's state."""

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError

from clients.runs import ControlRefusedError, RunRequestError, control_run
from tests.helpers import echo_steps, new_tenant, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}
USER = {"id": "u-1", "authority": "TENANT_USER"}


EMPTY_TASK = [
    "EVENT_TYPE_WORKFLOW_TASK_SCHEDULED",
    "EVENT_TYPE_WORKFLOW_TASK_STARTED",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
]


def paused_by(reason: str) -> dict:
    return {"start_signal": "pause", "start_signal_args": [{"reason": reason, "actor": ADMIN}]}


async def wait_status(handle, status: str) -> None:
    for _ in range(200):
        if (await handle.query("status"))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {status}")


async def history_length(handle) -> int:
    return len((await handle.fetch_history()).events)


async def settled_length(handle) -> int:
    """The history's length once the paused run waits (its last event is the timer of its
    SLA warning): nothing of its own is left to append."""
    for _ in range(200):
        events = (await handle.fetch_history()).events
        if events[-1].event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            return len(events)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never settled")


async def refused(client, run_id, name, payload) -> ControlRefusedError:
    with pytest.raises(ControlRefusedError) as caught:
        await control_run(client, run_id, name, payload)
    return caught.value


async def test_refusals_are_answered_and_leave_no_history(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    client = dev_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)},
                                 **paused_by("POLICY_CHANGE"))  # fmt: skip
        await wait_status(handle, "paused")
        before = await settled_length(handle)

        user = await refused(client, run_id, "resume", {"actor": USER})
        assert user.kind == "ControlNotAllowed"
        assert str(user) == ("TENANT_USER may not resume a POLICY_CHANGE pause "
                             "(allowed: TENANT_ADMIN, FOUNDER_ONLY)")  # fmt: skip
        again = await refused(client, run_id, "pause", {"actor": ADMIN})
        assert (again.kind, str(again)) == ("ControlNotApplicable",
                                            f"run {run_id} is already paused")  # fmt: skip
        # Malformed payloads (the client refuses them itself; sent raw, the run does).
        for bad in ({"actor": {"id": "x"}}, {"actor": ADMIN, "reason": "BORED"}, ["a list"]):
            with pytest.raises(WorkflowUpdateFailedError) as malformed:
                await handle.execute_update("pause_run", bad)
            cause = malformed.value.cause
            assert cause.type == "ControlMalformed" and cause.message.startswith("pause: "), cause
        for _ in range(30):  # a flood of refused resumes
            await refused(client, run_id, "resume", {"actor": USER})
        # Not one update or signal event; at most the server keeps one empty workflow task
        # of the 31 it ran for them (seen once in a few runs), where 31 refused signals
        # would have added 31 signal events and their tasks and audit writes.
        extra = [EventType.Name(e.event_type) for e in (await handle.fetch_history()).events][
            before:
        ]
        assert extra in ([], EMPTY_TASK), extra

        view = await control_run(client, run_id, "resume", {"actor": ADMIN})
        assert view.pause is None and view.status == "running"  # answered once resolved
        result = await handle.result()
    assert result.status == "succeeded"
    with pytest.raises(RunRequestError, match="has ended"):
        await control_run(client, run_id, "stop", {"actor": ADMIN})


async def test_pause_then_stop_by_update(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    client = dev_env.client
    async with running_worker(client, settings, sessions, task_queue):
        handle = await start_run(client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(3)},
                                 **paused_by("MANUAL_PAUSE"))  # fmt: skip
        await wait_status(handle, "paused")
        not_paused_yet = await refused(client, run_id, "pause", {"actor": ADMIN})
        assert not_paused_yet.kind == "ControlNotApplicable"
        view = await control_run(client, run_id, "stop", {"actor": ADMIN, "reason": "enough"})
        assert view.stop_requested
        result = await handle.result()
    assert (result.status, result.steps_done) == ("cancelled", 0)
    assert "enough" in result.reason
