"""SIGTERM to the real ``python worker.py`` while a slow step is in flight.

With GRACEFUL_SHUTDOWN_SECONDS (default 30) the worker stops polling, lets the step finish
and record its result, and exits 0; the run waits, and finishes on the next worker with
every step executed once. With 0 (the SDK's default, and this worker's before) the step is
cancelled at once: nothing of it is recorded and the next worker runs it again.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from db.models import DomainAck, Run, TraceStep
from tests.helpers import count, new_tenant, rows, start_run
from tests.local_servers import local_server
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.security_servers import allow_egress

ROOT = Path(__file__).resolve().parents[2]
SLOW = 4.0  # the step in flight at SIGTERM
pytestmark = pytest.mark.timeout(120)


def spawn_worker(processes: ProcessOutput, address: str, settings, task_queue: str,
                 data_dir: Path, **extra: str) -> subprocess.Popen:  # fmt: skip
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "DATABASE_URL": settings.database_url,
        "TASK_QUEUE": task_queue,
        "DATA_DIR": str(data_dir),
        "HTTP_ENABLED": "false",
        "RECONCILE_SCHEDULE_ENABLED": "false",
        "EVENT_REACTOR_ENABLED": "false",
        "POLICY_CHECK_INTERVAL_SECONDS": "0",
        **extra,
    }
    return processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)


async def until(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def sigterm_during_the_slow_step(dev_env, settings, sessions, task_queue, run_id,
                                       processes, tmp_path, **worker_env: str):  # fmt: skip
    """Start a 3-step run, SIGTERM the worker while step 1 (SLOW s) is in flight, wait
    for it to exit, start a new worker; returns what a test checks."""
    address = dev_env.client.service_client.config.target_host
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        paths = ["/slow/0.1", f"/slow/{SLOW}", "/slow/0.2"]
        steps = [{"skill": "http", "input": {"url": f"{server.url}{p}"}} for p in paths]
        worker = spawn_worker(processes, address, settings, task_queue, tmp_path, **worker_env)
        try:
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            await until(lambda: paths[1] in server.hits, 60, "the slow step to start")
            await asyncio.sleep(0.5)  # well inside the step
            worker.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await asyncio.to_thread(worker.wait, 60)
            exit_after = time.monotonic() - signalled
            recorded_at_exit = count(sessions, TraceStep, run_id=run_id)
            open_at_exit = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            worker = spawn_worker(processes, address, settings, task_queue, tmp_path)
            result = await asyncio.wait_for(handle.result(), timeout=60)
        finally:
            worker.kill()
            worker.wait(10)
        attempts = [
            event.activity_task_started_event_attributes.attempt
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        ]
        return {
            "code": code,
            "exit_after": exit_after,
            "recorded_at_exit": recorded_at_exit,
            "open_at_exit": open_at_exit,
            "result": result,
            "hits": Counter(server.hits),
            "paths": paths,
            "attempts": attempts,
            "log": processes.output,
        }


async def test_sigterm_lets_the_step_in_flight_finish(
    dev_env, settings, sessions, task_queue, run_id, processes, tmp_path
):
    seen = await sigterm_during_the_slow_step(
        dev_env, settings, sessions, task_queue, run_id, processes, tmp_path
    )
    assert seen["code"] == 0
    # The worker waited for the step (SLOW s, signalled 0.5 s in) and no longer.
    assert SLOW - 1.5 < seen["exit_after"] < SLOW + 20
    assert seen["recorded_at_exit"] == 2  # steps 0 and 1 recorded before the worker exited
    assert seen["open_at_exit"]  # the run waits for a worker
    result = seen["result"]
    assert result.status == "succeeded" and result.steps_done == 3
    assert all(seen["hits"][p] == 1 for p in seen["paths"]), seen["hits"]  # nothing twice
    assert seen["attempts"] and set(seen["attempts"]) == {1}
    steps_rows = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [s.step_index for s in steps_rows] == [0, 1, 2]
    acks = Counter((a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id))
    assert set(acks.values()) == {1}
    assert rows(sessions, Run, id=run_id)[0].phase == "COMPLETED"


async def test_without_a_grace_period_the_step_is_cut_and_runs_again(
    dev_env, settings, sessions, task_queue, run_id, processes, tmp_path
):
    seen = await sigterm_during_the_slow_step(
        dev_env, settings, sessions, task_queue, run_id, processes, tmp_path,
        GRACEFUL_SHUTDOWN_SECONDS="0",
    )  # fmt: skip
    assert seen["code"] == 0
    assert seen["exit_after"] < SLOW - 0.5  # it did not wait for the step
    assert seen["recorded_at_exit"] == 1  # the step in flight left nothing
    assert seen["open_at_exit"]
    result = seen["result"]
    assert result.status == "succeeded" and result.steps_done == 3
    assert seen["hits"][seen["paths"][1]] == 2  # the next worker ran it again
    assert max(seen["attempts"]) == 2
    assert count(sessions, TraceStep, run_id=run_id) == 3  # recorded once all the same
