"""Helpers for the reconciliation tests: runs that never finish, and one reconciliation.

A "worker crash" is played by replacing one activity of the real set with one that
never returns (registered under the same name), then terminating the run's workflow:
every write before that point is real, nothing after it happens.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from db.models import AuditExpectation, Run
from domain.reconcile_messages import ReconcileInput, ReconcileSummary, RunReport
from runtime.settings import Settings
from runtime.worker_factory import build_activities
from tests.helpers import echo_steps, new_tenant, running_worker, start_run
from workflows.reconcile import ReconcileWorkflow


def activity_name(fn: Callable[..., Any]) -> str:
    return activity._Definition.must_from_callable(fn).name


def hanging(name: str) -> Callable[..., Any]:
    """An activity named ``name`` that never returns (until cancelled)."""

    @activity.defn(name=name)
    async def hang(_: Any) -> None:
        await asyncio.sleep(3600)

    return hang


def failing(name: str) -> Callable[..., Any]:
    """An activity named ``name`` that fails at once, for good."""

    @activity.defn(name=name)
    def fail(_: Any) -> None:
        raise ApplicationError(f"{name} failed (injected)", type="Injected", non_retryable=True)

    return fail


def activities_with(
    settings: Settings, sessions: sessionmaker[Session], *replacements: Callable[..., Any]
) -> list:
    """The real activities, with the ones named like ``replacements`` swapped out."""
    by_name = {activity_name(r): r for r in replacements}
    with httpx.Client() as http:  # the echo skill never uses it
        real = build_activities(settings, sessions, http)
    swapped = [by_name.pop(activity_name(fn), fn) for fn in real]
    assert not by_name, f"no real activity named {sorted(by_name)}"
    return swapped


def fast_run(tenant_id: str, steps: int = 1) -> dict[str, Any]:
    """A run whose deadlines fall one second after it starts (with finalize grace 0)."""
    return {
        "tenant_id": tenant_id,
        "steps": echo_steps(steps),
        "options": {"run_timeout_seconds": 1},
    }


async def wait_until(predicate: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.1)


def run_phase(sessions: sessionmaker[Session], run_id: str) -> str | None:
    with sessions() as session:
        run = session.get(Run, run_id)
        return run.phase if run else None


async def wait_overdue(sessions: sessionmaker[Session], run_ids: list[str]) -> None:
    """Sleep until every expectation of these runs is past its deadline."""
    with sessions() as session:
        latest = session.scalar(
            select(func.max(AuditExpectation.deadline)).where(AuditExpectation.run_id.in_(run_ids))
        )
    assert latest is not None, f"no expectations for {run_ids}"
    await asyncio.sleep(max(0.0, (latest - datetime.now(UTC)).total_seconds()) + 0.2)


async def reconcile_once(client: Client, task_queue: str) -> ReconcileSummary:
    return await client.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileInput(page_size=50),
        id=f"reconcile-test-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
    )


def report_for(summary: ReconcileSummary, run_id: str) -> RunReport | None:
    found = [r for r in summary.reports if r.run_id == run_id]
    assert len(found) <= 1, found
    return found[0] if found else None


async def crash_run(env, fast, sessions, task_queue, run_id, hang: str, reached) -> None:  # noqa: ANN001
    """Start a run whose ``hang`` activity never returns; terminate it once ``reached``."""
    tenant = new_tenant(sessions)
    activities = activities_with(fast, sessions, hanging(hang))
    async with running_worker(env.client, fast, sessions, task_queue, activities):
        handle = await start_run(env.client, task_queue, run_id, fast_run(tenant))
        await wait_until(reached, what=f"run {run_id} to reach {hang}")
        await handle.terminate("worker crash (test)")
