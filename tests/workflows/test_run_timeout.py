"""run_timeout_seconds is enforced (patch run-timeout-enforced), on both databases: past it
a run fails at its next step boundary (dev server) or while paused — an ESCALATEd pause
waits no longer than the run's timeout (time-skipping server)."""

import asyncio

import pytest

from db.models import Incident, PauseRecord, TraceStep
from domain.models import RunStatusView
from tests.helpers import RunHandle, new_tenant, rows, running_worker, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}


async def test_a_run_past_its_timeout_fails_at_the_next_step_boundary(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "http", "input": {"url": f"{server.url}/slow/2"}},
                 {"skill": "echo", "input": {"text": "never"}}]  # fmt: skip
        payload = {"tenant_id": tenant, "steps": steps, "options": {"run_timeout_seconds": 1}}
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id, payload)
            result = await handle.result()
    assert (result.phase, result.status, result.steps_done) == ("FAILED", "failed", 1)
    assert result.reason == "run timeout: not done within run_timeout_seconds=1"
    assert [i.title.split(":")[0] for i in rows(sessions, Incident, source_run_id=run_id)] == [
        "Run timed out"]  # fmt: skip
    assert len(rows(sessions, TraceStep, run_id=run_id)) == 1  # the second never ran


async def test_an_escalated_pause_waits_no_longer_than_the_runs_timeout(
    ts_env, ts_settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions, governance={"pause_timeout_behavior": "ESCALATE",
                                              "pause_sla_seconds": 600})  # fmt: skip
    payload = {"tenant_id": tenant, "steps": [{"skill": "echo", "input": {"text": "a"}}],
               "options": {"run_timeout_seconds": 7200}}  # fmt: skip
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = RunHandle(await ts_env.client.start_workflow(
            "RunWorkflow", payload, id=f"run-{run_id}", task_queue=task_queue,
            start_signal="pause", start_signal_args=[{"reason": "MANUAL_PAUSE", "actor": ADMIN}],
        ))  # fmt: skip
        for _ in range(30):  # escalated at its SLA (10 min), still waiting
            await ts_env.sleep(60)
            pause = rows(sessions, PauseRecord, run_id=run_id)
            if pause and pause[0].escalated_at:
                break
        view = await handle.query("status", result_type=RunStatusView)
        assert view.status == "paused" and view.pause.escalated
        await ts_env.sleep(7200)  # the run's timeout passes: it does not wait forever
        for _ in range(100):
            if (await handle.describe()).status.name != "RUNNING":
                break
            await asyncio.sleep(0.05)
        result = await handle.result()
    assert (result["phase"], result["status"]) == ("FAILED", "failed")
    assert "run timeout" in result["reason"]
    assert rows(sessions, PauseRecord, run_id=run_id)[0].resolution == "TIMED_OUT"
