"""No single bad message wedges a run: everything here goes through the real Temporal CLI.

A signal with no payload, a payload that is not one JSON object, or two payloads is refused
(audited as SIGNAL_REFUSED) and changes nothing; the status query still answers, and a valid
resume afterwards completes the run. A workflow input that is not one JSON object fails the
workflow at once as InvalidRunInput (never a workflow task that fails forever) and writes
nothing.
"""

import asyncio
import json
import subprocess

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from db.models import AuditLedgerEntry, Run
from domain.enums import RunStatus
from domain.ids import run_workflow_id
from runtime.embedded_temporal import temporal_binary
from tests.helpers import RunHandle, count, echo_steps, new_tenant, outcome, rows, running_worker

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}


async def temporal(address: str, *args: str) -> str:
    """Run the CLI in a thread (the worker under test shares this event loop)."""
    out = await asyncio.to_thread(
        subprocess.run,
        [temporal_binary(), *args, "--address", address, "-o", "json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, f"temporal {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def inputs(*payloads: str) -> list[str]:
    return [arg for p in payloads for arg in ("--input", p)]


BAD_SIGNAL_PAYLOADS = {
    "no payload": [],
    "an array": ["[1, 2]"],
    "a string": ['"hello"'],
    "null": ["null"],
    "a number": ["42"],
    "two payloads": [json.dumps({"actor": ADMIN}), json.dumps({"actor": ADMIN})],
}


async def wait_refusals(sessions, run_id: str, n: int) -> list[AuditLedgerEntry]:
    for _ in range(150):
        refused = [
            e
            for e in rows(sessions, AuditLedgerEntry, entity_id=run_id)
            if e.event_type == "SIGNAL_REFUSED"
        ]
        if len(refused) >= n:
            return refused
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} refusals of run {run_id}, found {len(refused)}")


async def test_malformed_signals_and_queries_are_refused_and_the_run_completes(
    dev_env, settings, sessions, task_queue, run_id
):
    address = dev_env.client.service_client.config.target_host
    workflow_id = run_workflow_id(run_id)
    tenant = new_tenant(sessions)
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(2)}
    pause = {"reason": "MANUAL_PAUSE", "actor": ADMIN}
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await temporal(address, "workflow", "signal-with-start", "--task-queue", task_queue,
                       "--type", "RunWorkflow", "--workflow-id", workflow_id,
                       "--input", json.dumps(payload), "--signal-name", "pause",
                       "--signal-input", json.dumps(pause))  # fmt: skip
        sent = 0
        for name in ("resume", "pause", "stop"):
            for bad in BAD_SIGNAL_PAYLOADS.values():
                await temporal(address, "workflow", "signal", "--workflow-id", workflow_id,
                               "--name", name, *inputs(*bad))  # fmt: skip
                sent += 1
        refused = await wait_refusals(sessions, run_id, sent)
        reasons = {e.after_state["reason"] for e in refused}
        assert "malformed: expected one JSON object, got no payload" in reasons
        assert "malformed: expected one JSON object, got 2 payloads" in reasons
        assert any("got a string" in r for r in reasons), reasons
        # The run still answers, even a query sent with a stray argument, and is paused.
        for extra in ([], ['"x"']):
            status = json.loads(await temporal(address, "workflow", "query", "--workflow-id",
                                               workflow_id, "--type", "status",
                                               *inputs(*extra)))  # fmt: skip
            assert status["queryResult"][0]["status"] == "paused"
        await temporal(address, "workflow", "signal", "--workflow-id", workflow_id,
                       "--name", "resume", "--input", json.dumps({"actor": ADMIN}))  # fmt: skip
        result = await outcome(dev_env.client.get_workflow_handle(workflow_id))
    assert result["status"] == RunStatus.SUCCEEDED and result["steps_done"] == 2
    assert rows(sessions, Run, id=run_id)[0].status == RunStatus.SUCCEEDED


BAD_WORKFLOW_INPUTS = {
    "an array": ["[1, 2]"],
    "a string": ['"hello"'],
    "null": ["null"],
    "a number": ["42"],
    "no input": [],
    "two inputs": ['{"tenant_id": "a", "steps": []}', '{"tenant_id": "b", "steps": []}'],
}


@pytest.mark.parametrize("kind", list(BAD_WORKFLOW_INPUTS))
async def test_a_workflow_input_that_is_not_one_object_fails_at_once(
    kind, dev_env, settings, sessions, task_queue, run_id
):
    address = dev_env.client.service_client.config.target_host
    workflow_id = run_workflow_id(run_id)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await temporal(address, "workflow", "start", "--task-queue", task_queue,
                       "--type", "RunWorkflow", "--workflow-id", workflow_id,
                       *inputs(*BAD_WORKFLOW_INPUTS[kind]))  # fmt: skip
        handle = RunHandle(dev_env.client.get_workflow_handle(workflow_id))
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    cause = failed.value.cause
    assert getattr(cause, "type", None) == "InvalidRunInput", cause
    assert "expected" in str(cause) and "JSON object" in str(cause)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert count(sessions, Run, id=run_id) == 0


async def test_reconcile_workflow_refuses_an_input_that_is_not_an_object(
    dev_env, settings, sessions, task_queue
):
    address = dev_env.client.service_client.config.target_host
    workflow_id = f"reconcile-bad-{task_queue}"
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await temporal(address, "workflow", "start", "--task-queue", task_queue,
                       "--type", "ReconcileWorkflow", "--workflow-id", workflow_id,
                       "--input", '"hello"')  # fmt: skip
        handle = RunHandle(dev_env.client.get_workflow_handle(workflow_id))
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    assert getattr(failed.value.cause, "type", None) == "InvalidReconcileInput"


@pytest.mark.parametrize("bad", ['"hello"', "[1]", "null"])
async def test_promote_candidate_workflow_refuses_an_input_that_is_not_an_object(
    bad, dev_env, settings, sessions, task_queue
):
    address = dev_env.client.service_client.config.target_host
    workflow_id = f"candidate-bad-{task_queue}"
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await temporal(address, "workflow", "start", "--task-queue", task_queue,
                       "--type", "PromoteCandidateWorkflow", "--workflow-id", workflow_id,
                       "--input", bad)  # fmt: skip
        handle = RunHandle(dev_env.client.get_workflow_handle(workflow_id))
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), timeout=30)
    assert getattr(failed.value.cause, "type", None) == "InvalidCandidateInput"
    assert "JSON object" in str(failed.value.cause)
