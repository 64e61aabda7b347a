"""An eviction from the worker's cache is not a cancellation: with no cache at all
(MAX_CACHED_WORKFLOWS=0, every workflow task replays the run from its history and evicts
it after), a run that pauses and resumes completes, finalized once, never cancelled."""

import pytest

from db.models import DomainAck, Run
from domain.models import RunStatusView
from tests.helpers import echo_steps, new_tenant, rows, running_worker
from tests.workflows.test_control import start_paused, wait_status

pytestmark = pytest.mark.timeout(90)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}


async def test_a_run_evicted_after_every_task_is_not_cancelled(
    dev_env, settings, sessions, task_queue, run_id
):
    uncached = settings.model_copy(update={"max_cached_workflows": 0})
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, uncached, sessions, task_queue):
        handle = await start_paused(dev_env, task_queue, run_id,
                                    {"tenant_id": tenant, "steps": echo_steps(3)})  # fmt: skip
        await wait_status(handle, "paused")
        view = await handle.execute_update("resume_run", {"actor": ADMIN},
                                           result_type=RunStatusView)  # fmt: skip
        assert view.pause is None
        result = await handle.result()
    assert (result["phase"], result["status"], result["steps_done"]) == (
        "COMPLETED", "succeeded", 3)  # fmt: skip
    run = rows(sessions, Run, id=run_id)[0]
    assert (run.phase, run.status) == ("COMPLETED", "succeeded") and run.finalized_at
    acks = [(a.domain, a.action, a.status) for a in rows(sessions, DomainAck, run_id=run_id)]
    assert len(acks) == len(set(acks))  # nothing written twice by a replay
