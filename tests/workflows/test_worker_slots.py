"""Long steps in every step slot do not hold up other runs' governance writes.

The worker's executor has a thread for every slot of either kind (runtime.worker_options):
with ACTIVITY_THREADS=2 steps of 4 s in flight, another run still opens, authorizes and
starts its trace (local activities) at once. With one pool of 2 threads for both kinds
(as before), the same writes wait until a step ends.
"""

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from db.models import Run
from runtime.worker_factory import build_worker
from tests.helpers import echo_steps, new_tenant, rows, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(90)
SLOW = 4.0


async def time_to_open_beside_long_steps(dev_env, settings, sessions, task_queue,
                                         executor=None) -> float:  # noqa: ANN001  # fmt: skip
    """Seconds from the start of a one-step echo run to its trace start (EXECUTING) while
    two SLOW-second steps fill both step slots."""
    narrow = settings.model_copy(update={"activity_threads": 2, "local_activity_threads": 2})
    tenant = new_tenant(sessions)
    with local_server() as server, httpx.Client() as http:
        allow_egress(sessions, tenant, server.url)
        worker = build_worker(dev_env.client, narrow, sessions, http, task_queue=task_queue,
                              executor=executor)  # fmt: skip
        async with worker:
            long_runs = []
            for i in range(2):
                step = {"skill": "http", "input": {"url": f"{server.url}/slow/{SLOW + i / 100}"}}
                run_id = f"long-{uuid.uuid4().hex[:8]}"
                payload = {"tenant_id": tenant, "steps": [step]}
                long_runs.append(await start_run(dev_env.client, task_queue, run_id, payload))
            deadline = time.monotonic() + 30
            while sum(p.startswith("/slow/") for p in server.hits) < 2:
                assert time.monotonic() < deadline, "the long steps never started"
                await asyncio.sleep(0.05)
            quick_id = f"quick-{uuid.uuid4().hex[:8]}"
            began = time.monotonic()
            quick = await start_run(dev_env.client, task_queue, quick_id,
                                    {"tenant_id": tenant, "steps": echo_steps(1)})  # fmt: skip
            while not [r for r in rows(sessions, Run, id=quick_id) if r.phase != "AUTHORIZED"]:
                assert time.monotonic() - began < 30, "the quick run never started its trace"
                await asyncio.sleep(0.02)
            opened = time.monotonic() - began
            for handle in (*long_runs, quick):
                assert (await handle.result()).status == "succeeded"
    return opened


async def test_governance_writes_do_not_wait_for_long_steps(
    dev_env, settings, sessions, task_queue
):
    opened = await time_to_open_beside_long_steps(dev_env, settings, sessions, task_queue)
    assert opened < SLOW / 2


async def test_one_pool_for_both_kinds_makes_them_wait(dev_env, settings, sessions, task_queue):
    shared = ThreadPoolExecutor(2)  # as many threads as step slots, shared with the writes
    try:
        opened = await time_to_open_beside_long_steps(dev_env, settings, sessions, task_queue,
                                                      executor=shared)  # fmt: skip
    finally:
        shared.shutdown(wait=False)
    assert opened > SLOW / 2
