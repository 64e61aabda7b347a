"""A stop or a pause that arrives while the last step runs (patch late-control-refused), on
the real dev server and both databases: the run ends as it would have, the late request is
refused and audited, and the status no longer says it is requested."""

import asyncio

import pytest

from db.models import AuditLedgerEntry
from domain.models import RunStatusView
from tests.helpers import new_tenant, rows, running_worker, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(90)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}


async def in_slow_step(server) -> None:  # noqa: ANN001
    for _ in range(200):
        if any(hit.startswith("/slow/") for hit in server.hits):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slow step never started")


@pytest.mark.parametrize("how", ["signal", "update"])
async def test_a_stop_during_the_last_step_is_refused_and_audited(
    dev_env, settings, sessions, task_queue, run_id, how
):
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "echo", "input": {"text": "a"}},
                 {"skill": "http", "input": {"url": f"{server.url}/slow/1.5"}}]  # fmt: skip
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            await in_slow_step(server)
            stop = {"actor": ADMIN, "reason": "changed my mind"}
            pause = {"reason": "MANUAL_PAUSE", "actor": ADMIN}
            if how == "signal":
                await handle.signal("stop", stop)
            else:  # accepted: the last step had not ended yet
                view = await handle.execute_update("stop_run", stop, result_type=RunStatusView)
                assert view.stop_requested
            await handle.signal("pause", pause)
            result = await handle.result()
            view = await handle.query("status", result_type=RunStatusView)
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 2)
    assert not view.stop_requested and not view.pause_requested
    refused = {e.after_state["signal"]: e.after_state["reason"]
               for e in rows(sessions, AuditLedgerEntry, event_type="SIGNAL_REFUSED",
                             entity_id=run_id)}  # fmt: skip
    assert "no step was left to stop (changed my mind)" in refused["stop"]
    assert "no step was left to pause (MANUAL_PAUSE)" in refused["pause"]


async def test_a_stop_acted_on_mid_run_is_not_also_refused(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "http", "input": {"url": f"{server.url}/slow/1"}},
                 {"skill": "echo", "input": {"text": "never"}}]  # fmt: skip
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            await in_slow_step(server)
            await handle.signal("stop", {"actor": ADMIN, "reason": "enough"})
            result = await handle.result()
    assert (result.phase, result.status, result.steps_done) == ("FAILED", "cancelled", 1)
    assert rows(sessions, AuditLedgerEntry, event_type="SIGNAL_REFUSED", entity_id=run_id) == []
