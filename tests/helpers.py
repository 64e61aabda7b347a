"""Helpers for tests: seeding tenants and rules, starting runs, counting rows."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from clients.runs import failed_run_result
from db.models import PolicyRule, Tenant
from domain.ids import derive_id, run_workflow_id
from runtime.settings import Settings
from runtime.worker_factory import build_worker
from workflows.run_workflow import RunWorkflow


def new_tenant(
    sessions: sessionmaker[Session],
    *,
    budget: Decimal | None = Decimal("10"),
    allowed_skills: list[str] | None = None,
    status: str = "ACTIVE",
    governance: dict[str, Any] | None = None,
) -> str:
    """A tenant; ``governance``: its governance settings (domain.governance.TenantGovernance),
    what a run's options may only tighten."""
    tenant_id = f"t-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(
            Tenant(
                id=tenant_id,
                name=tenant_id,
                status=status,
                budget_limit=budget,
                allowed_skills=allowed_skills,
                governance=governance,
                created_at=now,
                updated_at=now,
            )
        )
    return tenant_id


def add_rule(
    sessions: sessionmaker[Session],
    tenant_id: str,
    name: str,
    kind: str,
    params: dict,
    outcome: str,
) -> str:
    rule_id = derive_id(tenant_id, "rule", name)
    with sessions.begin() as session:
        session.add(
            PolicyRule(
                id=rule_id,
                tenant_id=tenant_id,
                name=name,
                kind=kind,
                params=params,
                outcome=outcome,
                updated_at=datetime.now(UTC),
            )
        )
    return rule_id


def echo_steps(n: int) -> list[dict[str, Any]]:
    return [{"skill": "echo", "input": {"text": f"step {i}"}} for i in range(n)]


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    sessions: sessionmaker[Session],
    task_queue: str,
    activities: Sequence | None = None,
) -> AsyncIterator[None]:
    with httpx.Client() as http:
        worker = build_worker(
            client,
            settings,
            sessions,
            http,
            task_queue=task_queue,
            activities=list(activities) if activities is not None else None,
        )
        async with worker:
            yield


class RunHandle:
    """A RunWorkflow handle whose ``result()`` is the run's RunResult however it ended: a
    FAILED run's workflow fails with the result in its details (clients.runs.run_result);
    everything else is the handle's."""

    def __init__(self, handle: WorkflowHandle) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    async def result(self, **kwargs: Any) -> Any:
        try:
            return await self._handle.result(**kwargs)
        except WorkflowFailureError as exc:
            result = failed_run_result(exc)
            if result is None:
                raise
            typed = getattr(self._handle, "_result_type", None) is not None
            return result if typed else result.model_dump(mode="json")


async def outcome(handle: WorkflowHandle) -> dict[str, Any]:
    """An untyped run handle's result (a dict) however the run ended."""
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        result = failed_run_result(exc)
        if result is None:
            raise
        return result.model_dump(mode="json")


async def start_run(
    client: Client, task_queue: str, run_id: str, payload: dict[str, Any], **options: Any
) -> RunHandle:
    return RunHandle(
        await client.start_workflow(
            RunWorkflow.run,
            payload,
            id=run_workflow_id(run_id),
            task_queue=task_queue,
            **options,
        )
    )


def count(sessions: sessionmaker[Session], model: Any, **where: Any) -> int:
    with sessions() as session:
        stmt = select(func.count()).select_from(model)
        for column, value in where.items():
            stmt = stmt.where(getattr(model, column) == value)
        return session.scalar(stmt) or 0


def rows(sessions: sessionmaker[Session], model: Any, **where: Any) -> list[Any]:
    with sessions() as session:
        stmt = select(model)
        for column, value in where.items():
            stmt = stmt.where(getattr(model, column) == value)
        return list(session.scalars(stmt))


async def markers(handle: WorkflowHandle) -> list[tuple[str, str]]:
    """(marker name, what it records) for every marker of the run's history: the activity
    type of a local activity, the patch id of a patch."""
    found = []
    async for event in handle.fetch_history_events():
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        attrs = event.marker_recorded_event_attributes
        if attrs.marker_name == "core_local_activity":
            data = json.loads(attrs.details["data"].payloads[0].data)
            found.append((attrs.marker_name, data["activity_type"]))
        elif attrs.marker_name == "core_patch":
            patch_id = json.loads(attrs.details["patch-data"].payloads[0].data)["id"]
            found.append((attrs.marker_name, patch_id))
        else:
            found.append((attrs.marker_name, ""))
    return found


def assert_settings_refused(env: dict[str, str], named: str, monkeypatch, tmp_path, capsys) -> str:  # noqa: ANN001
    """These environment variables are refused naming ``named``: by Settings, and by the CLI
    in one line with exit 2 and nothing created. Returns Settings' message."""
    from pydantic import ValidationError

    from cli.main import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        Settings(_env_file=None)
    except ValidationError as refused:
        message = str(refused)
    else:
        raise AssertionError(f"{env} was accepted")
    assert named in message, message
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code = main(["findings"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: invalid settings: ") and named in err, err
    assert len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    return message
