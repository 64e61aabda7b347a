"""The Schedule ``reconcile-stale-runs`` fires on the dev server by itself; its findings
reach alerts once, not once per scheduled run."""

import asyncio
import contextlib
import uuid

import pytest
from temporalio.client import Client, ScheduleOverlapPolicy
from temporalio.service import RPCError

from db.models import Alert, OutboxEvent, ReconciliationFinding, SuppressedAlert
from domain.alert_fatigue import FatigueSettings
from events.handlers import audit_handlers
from events.reactor import Reactor, ReactorConfig
from runtime.schedules import (
    RECONCILE_SCHEDULE_ID,
    ensure_reconcile_schedule,
    update_reconcile_schedule,
)
from tests.helpers import count, rows, running_worker
from tests.reconcile_support import crash_run, run_phase, wait_overdue, wait_until

pytestmark = pytest.mark.timeout(120)


async def actions_done(handle) -> int:  # noqa: ANN001 - a ScheduleHandle
    """Scheduled workflows started and no longer running."""
    info = (await handle.describe()).info
    return info.num_actions - len(info.running_actions)


async def test_scheduled_reconciliation_fires_and_alerts_once(
    dev_env, settings, sessions, task_queue, run_id
):
    fast = settings.model_copy(
        update={"finalize_grace_seconds": 0, "reconcile_interval_seconds": 1}
    )
    client = dev_env.client
    handle = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    with contextlib.suppress(RPCError):
        await handle.delete()  # a leftover of an interrupted run of this test
    await crash_run(
        dev_env, fast, sessions, task_queue, run_id, "steps.execute",
        lambda: run_phase(sessions, run_id) == "EXECUTING",
    )  # fmt: skip
    await wait_overdue(sessions, [run_id])

    stop = asyncio.Event()
    config = ReactorConfig(group=f"test-{uuid.uuid4().hex[:8]}", poll_interval=0.1)
    reactor = Reactor(sessions, audit_handlers(FatigueSettings()), config)
    reacting = asyncio.create_task(reactor.run(stop))
    try:
        async with running_worker(client, fast, sessions, task_queue):
            assert await ensure_reconcile_schedule(client, fast, task_queue=task_queue) == (
                "created"
            )
            # Idempotent: a second worker start leaves the same schedule as it is.
            assert await ensure_reconcile_schedule(client, fast, task_queue=task_queue) == (
                "exists"
            )
            description = await handle.describe()
            assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
            await wait_until(
                lambda: count(sessions, Alert, run_id=run_id) > 0,
                timeout=60,
                what="a STALE_RUN alert from a scheduled reconciliation",
            )
            fired = (await handle.describe()).info.num_actions  # the alert came from one
            while await actions_done(handle) < fired + 2:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1)  # let the reactor see anything the last runs wrote
    finally:
        stop.set()
        await reacting
        with contextlib.suppress(RPCError):
            await handle.delete()

    assert fired >= 1
    assert [(a.alert_type, a.domain) for a in rows(sessions, Alert, run_id=run_id)] == [
        ("STALE_RUN", "orchestrator")
    ]
    assert count(sessions, SuppressedAlert, run_id=run_id) == 0
    audit_events = [e for e in rows(sessions, OutboxEvent, run_id=run_id) if "audit" in e.topic]
    assert [e.topic for e in audit_events] == ["audit.reconciliation.stale"]
    [stale] = rows(sessions, ReconciliationFinding, run_id=run_id, kind="STALE")
    assert stale.reconciliation_id.startswith(RECONCILE_SCHEDULE_ID)


async def test_workers_create_the_schedule_and_only_the_operators_command_changes_it(
    dev_env, settings, task_queue, caplog
):
    client, schedule_id = dev_env.client, f"reconcile-test-{uuid.uuid4().hex[:8]}"
    handle = client.get_schedule_handle(schedule_id)
    first = settings.model_copy(update={"reconcile_interval_seconds": 60})
    other = settings.model_copy(update={"reconcile_interval_seconds": 300})
    try:
        assert await ensure_reconcile_schedule(
            client, first, schedule_id=schedule_id, task_queue=task_queue) == "created"  # fmt: skip
        await handle.pause(note="ops: paused for maintenance")
        # A worker with other settings starts: the schedule stays as the operator left it.
        assert await ensure_reconcile_schedule(
            client, other, schedule_id=schedule_id, task_queue=task_queue) == "exists"  # fmt: skip
        assert "differs from this worker's settings" in caplog.text
        described = await handle.describe()
        assert [i.every.total_seconds() for i in described.schedule.spec.intervals] == [60]
        assert described.schedule.state.paused
        assert described.schedule.action.run_timeout.total_seconds() == 1800  # per run
        assert described.schedule.action.execution_timeout is None  # never the whole chain
        # The explicit command applies the settings and keeps the pause.
        assert await update_reconcile_schedule(
            client, other, schedule_id=schedule_id, task_queue=task_queue) == "updated"  # fmt: skip
        described = await handle.describe()
        assert [i.every.total_seconds() for i in described.schedule.spec.intervals] == [300]
        assert described.schedule.state.paused
        assert described.schedule.state.note == "ops: paused for maintenance"
    finally:
        with contextlib.suppress(RPCError):
            await handle.delete()


async def test_a_temporal_that_refuses_the_schedule_does_not_stop_the_worker(dev_env, settings):
    elsewhere = Client(dev_env.client.service_client, namespace="no-such-namespace")
    assert await ensure_reconcile_schedule(elsewhere, settings) == "unavailable"
