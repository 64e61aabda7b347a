"""Governed vs bare: the same number of runs, steps and concurrency on the same worker.

A governed run is started exactly as the CLI and the API start one
(clients.runs.start_run: validated input, search attributes) with all
governance on; a bare run is ``BareWorkflow`` with the same number of no-op activities.
Each run's time is measured from the start request to its result; its start latency
from the start request to its first step beginning to execute (tools.bench.probe).
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from clients.runs import run_result, start_run
from services import tenants
from tools.bench.bare import BARE_WORKFLOW, BareInput, BareResult
from tools.bench.cpu import cpu_now
from tools.bench.harness import BenchEnv
from tools.bench.stats import BatchFigures, RunSample, figures

GOVERNED, BARE = "governed", "bare"
BENCH_TENANT = "bench"


def echo_steps(k: int) -> list[dict]:
    return [{"skill": "echo", "input": {"text": f"step {i}"}} for i in range(k)]


def seed_tenant(env: BenchEnv, tenant_id: str = BENCH_TENANT) -> str:
    """A tenant with a budget far above what the benchmark spends (every skill allowed)."""
    tenants.add_tenant(env.sessions, tenant_id, name="benchmark", budget="1000000", exist_ok=True)
    # The paused-runs benchmark holds 10,000 runs open at once: no runs-in-flight bound.
    tenants.set_flight_limits(
        env.sessions, tenant_id, runs=tenants.INT32_MAX, steps=tenants.INT32_MAX
    )
    return tenant_id


async def governed_once(env: BenchEnv, run_id: str, steps: int, tenant_id: str) -> bool:
    payload = {"run_id": run_id, "tenant_id": tenant_id, "steps": echo_steps(steps)}
    handle = await start_run(env.client, env.task_queue, payload)
    result = await run_result(handle)
    return result.status == "succeeded" and result.steps_done == steps


async def bare_once(env: BenchEnv, workflow_id: str, steps: int) -> bool:
    handle = await env.client.start_workflow(
        BARE_WORKFLOW,
        BareInput(steps=steps),
        id=workflow_id,
        task_queue=env.task_queue,
        result_type=BareResult,
    )
    result = await handle.result()
    return result.steps_done == steps


def workflow_id_of(kind: str, run_id: str) -> str:
    return f"run-{run_id}" if kind == GOVERNED else run_id


async def run_batch(
    env: BenchEnv,
    kind: str,
    runs: int,
    steps: int,
    concurrency: int,
    tenant_id: str = BENCH_TENANT,
    progress: Callable[[str], None] | None = None,
) -> tuple[BatchFigures, list[RunSample]]:
    """``runs`` runs of ``kind``, at most ``concurrency`` in flight at any time."""
    tag = uuid.uuid4().hex[:8]
    limit = asyncio.Semaphore(concurrency)
    samples: list[RunSample] = []

    def one(i: int) -> tuple[str, Awaitable[bool]]:
        if kind == GOVERNED:
            run_id = f"bench-{tag}-{i}"
            return workflow_id_of(kind, run_id), governed_once(env, run_id, steps, tenant_id)
        workflow_id = f"bare-{tag}-{i}"
        return workflow_id, bare_once(env, workflow_id, steps)

    async def timed(i: int) -> None:
        async with limit:
            workflow_id, job = one(i)
            requested = time.monotonic()
            try:
                ok = await job
            except Exception:  # noqa: BLE001 - a failed run is counted, not fatal
                ok = False
            finished = time.monotonic()
            samples.append(
                RunSample(
                    workflow_id=workflow_id,
                    requested=requested,
                    first_step=env.probe.first_step.get(workflow_id),
                    finished=finished,
                    ok=ok,
                )
            )
            if progress and len(samples) % max(runs // 4, 1) == 0:
                progress(f"  {kind}: {len(samples)}/{runs} runs")

    server_pid = env.server.process.pid
    cpu_before, began = cpu_now(server_pid), time.monotonic()
    await asyncio.gather(*(timed(i) for i in range(runs)))
    wall, cpu = time.monotonic() - began, cpu_now(server_pid) - cpu_before
    return figures(kind, samples, steps, concurrency, wall, cpu), samples


async def warm_up(env: BenchEnv, steps: int, tenant_id: str = BENCH_TENANT) -> None:
    """A few runs of each kind so that imports, caches and connections are warm."""
    for kind in (GOVERNED, BARE):
        await run_batch(env, kind, 4, steps, 2, tenant_id)
