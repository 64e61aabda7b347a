"""A run id names one run, forever: a second execution with the same workflow id is refused
when it opens, writes nothing, and the first run's records and proof stay as they were.

Every path of the hostile-tenant probe: another tenant through the client's default id
reuse policy (what `temporal workflow start` does), the real Temporal CLI, the project's
own start path (reject-duplicate id reuse policy), and a suspended tenant reusing its own id.
"""

import asyncio
import json
import subprocess
from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy

from clients import runs as runs_client
from db.models import (
    Alert,
    AuditExpectation,
    AuditLedgerEntry,
    DomainAck,
    IdempotencyRecord,
    Run,
    TraceStep,
)
from db.queries.evidence import run_proof
from domain.enums import RunStatus, TenantStatus
from domain.ids import run_workflow_id
from runtime.embedded_temporal import temporal_binary
from services.tenants import update_tenant
from tests.helpers import count as count_rows
from tests.helpers import echo_steps, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)


def footprint(sessions, run_id: str, tenant_id: str) -> dict[str, int]:
    """Everything a run leaves in the database, counted."""
    return {
        "trace_steps": count_rows(sessions, TraceStep, run_id=run_id),
        "acks": count_rows(sessions, DomainAck, run_id=run_id),
        "expectations": count_rows(sessions, AuditExpectation, run_id=run_id),
        "ledger": count_rows(sessions, IdempotencyRecord, workflow_id=run_workflow_id(run_id)),
        "audit": count_rows(sessions, AuditLedgerEntry, entity_id=run_id),
        "alerts": count_rows(sessions, Alert, tenant_id=tenant_id),
    }


def proof_status(sessions, run_id: str) -> str:
    with sessions() as session:
        return run_proof(session, run_id).status


async def finished_run(dev_env, task_queue, sessions, run_id: str, tenant: str) -> None:
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(3)}
    handle = await start_run(dev_env.client, task_queue, run_id, payload)
    assert (await handle.result()).status == RunStatus.SUCCEEDED
    assert proof_status(sessions, run_id) == "VERIFIED"


def hostile_payload(run_id: str, tenant: str) -> dict:
    """What the probe's restricted tenant sent: skills it may not use, a 1M-token call."""
    return {
        "run_id": run_id,
        "tenant_id": tenant,
        "steps": [
            {"skill": "echo", "input": {"text": "mine now"}},
            {"skill": "http", "input": {"url": "http://127.0.0.1:9/x"}},
            {"skill": "llm", "input": {"prompt": "spend", "max_tokens": 1_000_000}},
        ],
    }


async def assert_refused(handle) -> None:
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert getattr(cause, "type", None) == "RunIdInUse", cause
    assert "is already in use" in str(cause)


async def test_another_tenant_reusing_a_finished_run_id_is_refused(
    dev_env, settings, sessions, task_queue, run_id
):
    owner = new_tenant(sessions)
    intruder = new_tenant(sessions, budget=Decimal("0.01"), allowed_skills=["echo"])
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await finished_run(dev_env, task_queue, sessions, run_id, owner)
        before = footprint(sessions, run_id, owner)
        # `temporal workflow start` uses the server's default: a closed id may be reused.
        handle = await start_run(
            dev_env.client,
            task_queue,
            run_id,
            hostile_payload(run_id, intruder),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        await assert_refused(handle)
    assert footprint(sessions, run_id, owner) == before
    assert proof_status(sessions, run_id) == "VERIFIED"
    (run,) = rows(sessions, Run, id=run_id)
    assert run.tenant_id == owner and run.status == RunStatus.SUCCEEDED
    assert count_rows(sessions, Run, tenant_id=intruder) == 0
    assert count_rows(sessions, AuditLedgerEntry, tenant_id=intruder) == 0


async def test_reuse_through_the_temporal_cli_is_refused(
    dev_env, settings, sessions, task_queue, run_id
):
    owner, intruder = new_tenant(sessions), new_tenant(sessions)
    address = dev_env.client.service_client.config.target_host
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await finished_run(dev_env, task_queue, sessions, run_id, owner)
        before = footprint(sessions, run_id, owner)
        started = await asyncio.to_thread(
            subprocess.run,
            [temporal_binary(), "workflow", "start", "--address", address,
             "--task-queue", task_queue, "--type", "RunWorkflow",
             "--workflow-id", run_workflow_id(run_id),
             "--input", json.dumps(hostile_payload(run_id, intruder))],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        await assert_refused(dev_env.client.get_workflow_handle(run_workflow_id(run_id)))
    assert footprint(sessions, run_id, owner) == before
    assert proof_status(sessions, run_id) == "VERIFIED"


async def test_the_project_start_path_refuses_a_taken_id_before_starting(
    dev_env, settings, sessions, task_queue, run_id
):
    owner, other = new_tenant(sessions), new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await finished_run(dev_env, task_queue, sessions, run_id, owner)
        executions = [e async for e in dev_env.client.list_workflows(f'WorkflowId="run-{run_id}"')]
        for tenant in (owner, other):  # the same words, whoever asks
            with pytest.raises(runs_client.RunRequestError) as refused:
                await runs_client.start_run(
                    dev_env.client,
                    task_queue,
                    {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(1)},
                )
            assert str(refused.value) == runs_client.run_id_in_use(run_id)
            assert other not in str(refused.value) and owner not in str(refused.value)
    again = [e async for e in dev_env.client.list_workflows(f'WorkflowId="run-{run_id}"')]
    assert len(again) == len(executions) == 1


async def test_a_suspended_tenant_cannot_run_steps_under_its_old_run_id(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await finished_run(dev_env, task_queue, sessions, run_id, tenant)
        update_tenant(sessions, tenant, status=TenantStatus.SUSPENDED)
        before = footprint(sessions, run_id, tenant)
        handle = await start_run(
            dev_env.client,
            task_queue,
            run_id,
            {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(5)},
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        await assert_refused(handle)
    assert footprint(sessions, run_id, tenant) == before
    assert count_rows(sessions, TraceStep, run_id=run_id) == 3
