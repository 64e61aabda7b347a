"""A worker process SIGKILLed mid-run: the run finishes on a new worker, exactly once.

The worker is the real `python worker.py` in a subprocess, pointed at the test's dev
server and database. Skills may run again after a crash (at-least-once); what they
wrote — trace steps, acks, governance rows — exists exactly once, and the chain verifies.
"""

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from db.models import AuditExpectation, DomainAck, PolicyEvaluation, Run, Trace, TraceStep
from domain.hashchain import first_broken_link, step_content
from tests.helpers import count, new_tenant, rows, start_run
from tests.local_servers import local_server
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.security_servers import allow_egress

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def spawn_worker(
    processes: ProcessOutput, address: str, database_url: str, task_queue: str, data_dir: Path
) -> subprocess.Popen:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "DATABASE_URL": database_url,
        "TASK_QUEUE": task_queue,
        "DATA_DIR": str(data_dir),
        "HTTP_ENABLED": "false",
        "RECONCILE_SCHEDULE_ENABLED": "false",
        "EVENT_REACTOR_ENABLED": "false",
        "POLICY_CHECK_INTERVAL_SECONDS": "0",
    }
    return processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)


async def test_worker_killed_mid_run(
    dev_env, settings, sessions, task_queue, run_id, processes, tmp_path
):
    address = dev_env.client.service_client.config.target_host
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "http", "input": {"url": f"{server.url}/slow/0.4"}} for _ in range(6)]
        worker = spawn_worker(processes, address, settings.database_url, task_queue, tmp_path)
        try:
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            for _ in range(300):
                if count(sessions, TraceStep, run_id=run_id) >= 2:
                    break
                await asyncio.sleep(0.05)
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            done_at_kill = count(sessions, TraceStep, run_id=run_id)
            assert 2 <= done_at_kill < 6
            worker = spawn_worker(processes, address, settings.database_url, task_queue, tmp_path)
            result = await asyncio.wait_for(handle.result(), timeout=90)
        finally:
            worker.kill()
            worker.wait(10)
        executed = server.hits.count("/slow/0.4")
    assert result.status == "succeeded" and result.steps_done == 6
    assert 6 <= executed <= 7  # the step in flight at the kill may have run twice
    # Exactly one row per expected action, in every table the run wrote.
    steps_rows = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [s.step_index for s in steps_rows] == list(range(6))
    acks = Counter((a.domain, a.action) for a in rows(sessions, DomainAck, run_id=run_id))
    assert set(acks.values()) == {1}
    expectations = rows(sessions, AuditExpectation, run_id=run_id)
    assert {(e.domain, e.action) for e in expectations} == set(acks)
    assert all(e.acked_at is not None for e in expectations)
    assert count(sessions, PolicyEvaluation, run_id=run_id) == 1
    assert count(sessions, Trace, run_id=run_id) == 1
    assert rows(sessions, Run, id=run_id)[0].phase == "COMPLETED"

    def content(s):
        return step_content(run_id=s.run_id, step_index=s.step_index, skill=s.skill,
                            input=s.input, output=s.output, cost=s.cost, status=s.status,
                            error=s.error)  # fmt: skip

    chain = [(s.step_index, s.prev_hash, s.hash, content(s)) for s in steps_rows]
    assert first_broken_link(chain) is None
    assert rows(sessions, Trace, run_id=run_id)[0].head_hash == steps_rows[-1].hash
