"""Against the real dev server: a reconciliation purges the expired rows (more than a page,
over several purge calls) and reports the counts (`starter.py reconcile`, --json and text,
and the retention.purged metric); a failed ReconcileWorkflow run writes exactly one
``reconciliation.failed`` event and still fails; a cancelled one writes none."""

import asyncio
import json
import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from activities.reconciliation import ReconcileActivities
from cli.main import main
from db.models import OutboxEvent, ReconciliationFinding
from domain.enums import Phase
from domain.ids import SYSTEM_TENANT
from domain.reconcile_messages import TOPIC_RECONCILIATION_FAILED, ReconcileInput
from runtime.settings import Settings
from tests.conftest import BACKENDS
from tests.faults import AFTER_ONCE, BEFORE, activities_with_faults
from tests.helpers import echo_steps, markers, new_tenant, running_worker, start_run
from tests.reconcile_support import activities_with, hanging
from tests.retention_support import (
    DAY,
    add_event,
    add_expectation,
    add_finding,
    add_run,
    add_suppressed,
    database_url,
    ids,
    ledger_workflows,
    migrated,
    new_id,
    now,
    set_cursor,
)
from tests.telemetry_support import process_telemetry
from workflows.patches import PURGE_EXPIRED_ROWS, REPORT_RECONCILE_FAILURE
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=BACKENDS)
def own_db(request, fresh_database, tmp_path):  # noqa: ANN001, ANN201
    """A database of this test's own (the counts are exact) and settings that use it, with
    purge pages of three rows."""
    url = database_url(request.param, fresh_database, tmp_path)
    engine, sessions = migrated(url)
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url,
                        policy_check_interval_seconds=0, policy_check_min_steps=1,
                        retention_page_size=3)  # fmt: skip
    yield settings, sessions
    engine.dispose()


def purged_metric() -> dict[str, int]:
    """governed_runs.retention.purged so far, per table (the in-memory reader)."""
    totals: dict[str, int] = {}
    data = process_telemetry().reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "governed_runs.retention.purged":
                    for point in metric.data.data_points:
                        table = point.attributes["table"]
                        totals[table] = totals.get(table, 0) + point.value
    return totals


def cli(monkeypatch, capsys, dev_env, task_queue, *argv: str) -> tuple[int, str, str]:  # noqa: ANN001
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TASK_QUEUE", task_queue)
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_a_reconciliation_purges_expired_rows_and_reports_the_counts(
    dev_env, own_db, task_queue, monkeypatch, capsys
):
    settings, sessions = own_db
    process_telemetry()
    t = now()
    old = t - 40 * DAY
    set_cursor(sessions, "audit-alerts", t)
    expired_events = [add_event(sessions, old, (True, True)) for _ in range(4)]
    owed_event = add_event(sessions, old, (True, False))  # a delivery still owed: kept
    for _ in range(5):
        closed_run = new_id("closed")
        add_expectation(sessions, closed_run, old, acked=True)
        add_finding(sessions, closed_run, old)
    fresh_finding = add_finding(sessions, new_id("closed"), t - DAY)
    for _ in range(4):
        add_suppressed(sessions, old)
    finalized = [add_run(sessions, Phase.COMPLETED, created_at=old, finalized_at=old + DAY)
                 for _ in range(2)]  # fmt: skip
    # Two pages of three per purge call: the workflow calls again until nothing is left.
    few_pages = ReconcileActivities(sessions, replace(settings.retention_policy(), max_pages=2))
    activities = activities_with(settings, sessions, few_pages.purge_expired)
    metric_before = purged_metric()
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities):
        tenant = new_tenant(sessions)  # a real run: its rows are fresh, all kept
        run_id = f"r-{uuid.uuid4().hex[:12]}"
        handle = await start_run(
            dev_env.client, task_queue, run_id, {"tenant_id": tenant, "steps": echo_steps(2)}
        )
        assert (await handle.result()).status == "succeeded"
        run_ledger = ledger_workflows(sessions)[f"run-{run_id}"]
        code, out, err = await asyncio.to_thread(
            cli, monkeypatch, capsys, dev_env, task_queue, "reconcile", "--json"
        )
        assert (code, err) == (0, ""), err
        summary = json.loads(out)
        code, text, err = await asyncio.to_thread(
            cli, monkeypatch, capsys, dev_env, task_queue, "reconcile"
        )
        assert (code, err) == (0, ""), err

    expected = {"outbox_events": 4, "event_deliveries": 8, "reconciliation_findings": 5,
                "suppressed_alerts": 4, "idempotency_ledger": 6}  # fmt: skip
    assert summary["purged"] == {**expected, "payload_blobs": 0}
    # outbox 3+1, findings 3+2, suppressed 3+1, ledger 3+3; at most two pages a call: the
    # workflow called reconcile.purge_expired (at least) four times
    assert summary["purge_pages"] == 8
    assert text.splitlines()[-1].startswith("purged expired rows: none;")  # all gone the 1st time
    with sessions() as session:
        left = set(session.scalars(select(OutboxEvent.id).where(OutboxEvent.run_id.is_(None))))
    assert owed_event in left and left.isdisjoint(expired_events)
    assert fresh_finding in ids(sessions, ReconciliationFinding.id)
    ledger = ledger_workflows(sessions)
    assert ledger[f"run-{run_id}"] == run_ledger  # (a ledger row of an open run: db tests)
    assert {f"run-{r}" for r in finalized}.isdisjoint(ledger)
    metric_after = purged_metric()
    assert {k: metric_after.get(k, 0) - metric_before.get(k, 0) for k in expected} == expected


def failure_events(sessions, workflow_id: str) -> list[OutboxEvent]:  # noqa: ANN001
    with sessions() as session:
        found = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == TOPIC_RECONCILIATION_FAILED)
        )
        return [e for e in found if e.payload["workflow_id"] == workflow_id]


async def test_a_failed_reconciliation_writes_one_failure_event_and_fails(
    dev_env, settings, sessions, task_queue
):
    """reconcile.scan fails for good; the failure event's first write loses its completion
    (the attempt is retried): one event all the same, and the workflow fails."""
    faults = {"reconcile.scan": BEFORE, "reconcile.report_failure": AFTER_ONCE}
    activities = activities_with_faults(settings, sessions, faults)
    workflow_id = f"reconcile-fails-{uuid.uuid4().hex[:8]}"
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities):
        handle = await dev_env.client.start_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id,
            task_queue=task_queue,
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and cause.activity_type == "reconcile.scan"
    assert isinstance(cause.cause, ApplicationError) and cause.cause.non_retryable
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    [event] = failure_events(sessions, workflow_id)
    assert (event.tenant_id, event.run_id) == (SYSTEM_TENANT, None)
    assert event.payload == {
        "tenant_id": SYSTEM_TENANT,
        "workflow_id": workflow_id,
        "run_id": handle.result_run_id,
        "error": "activity reconcile.scan failed: ApplicationError: injected: reconcile.scan "
        "fails before its write",
        "severity": "HIGH",
    }
    assert ("core_patch", REPORT_RECONCILE_FAILURE) in await markers(handle)
    attempts = [
        e.activity_task_started_event_attributes.attempt
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts[-1] == 2  # the report's second attempt found the first one's event


async def test_when_even_the_failure_event_cannot_be_written_the_run_fails_with_its_own_error(
    dev_env, settings, sessions, task_queue
):
    faults = {"reconcile.scan": BEFORE, "reconcile.report_failure": BEFORE}
    activities = activities_with_faults(settings, sessions, faults)
    workflow_id = f"reconcile-unreported-{uuid.uuid4().hex[:8]}"
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities):
        handle = await dev_env.client.start_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id,
            task_queue=task_queue,
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError) and cause.activity_type == "reconcile.scan"
    assert failure_events(sessions, workflow_id) == []


async def test_a_reconciliation_out_of_retries_writes_one_failure_event(
    dev_env, settings, sessions, task_queue
):
    """A retryable error on every attempt: after the last of five, the event, then failed."""
    from temporalio import activity

    @activity.defn(name="reconcile.purge_expired")
    def purge_always_fails() -> None:
        raise RuntimeError("database unusable (injected)")

    activities = activities_with(settings, sessions, purge_always_fails)
    workflow_id = f"reconcile-retries-{uuid.uuid4().hex[:8]}"
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities):
        handle = await dev_env.client.start_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id,
            task_queue=task_queue,
        )  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert isinstance(failed.value.cause, ActivityError)
    [event] = failure_events(sessions, workflow_id)
    assert event.payload["error"] == (
        "activity reconcile.purge_expired failed: RuntimeError: database unusable (injected)"
    )
    found = await markers(handle)
    assert ("core_patch", PURGE_EXPIRED_ROWS) in found
    assert ("core_patch", REPORT_RECONCILE_FAILURE) in found


async def test_a_cancelled_reconciliation_writes_no_failure_event(
    dev_env, settings, sessions, task_queue
):
    activities = activities_with(settings, sessions, hanging("reconcile.scan"))
    workflow_id = f"reconcile-cancelled-{uuid.uuid4().hex[:8]}"
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities):
        handle = await dev_env.client.start_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id,
            task_queue=task_queue,
        )  # fmt: skip

        async def scan_started() -> bool:
            return any(
                [e.HasField("activity_task_started_event_attributes")
                 async for e in handle.fetch_history_events()]
            )  # fmt: skip

        for _ in range(100):
            if await scan_started():
                break
            await asyncio.sleep(0.1)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert failure_events(sessions, workflow_id) == []
    assert ("core_patch", REPORT_RECONCILE_FAILURE) not in await markers(handle)
