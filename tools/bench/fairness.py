"""Fairness between tenants: one tenant floods the worker with slow steps, another runs
a one-step echo run; how long does the quiet tenant's run take?

Measured side by side on one worker: the quiet run alone, then under the flood with the
flooding tenant's steps in flight unbounded, then under the same flood at the default
steps-in-flight limit (MAX_STEPS_IN_FLIGHT_PER_TENANT). The slow steps call a real local
HTTP server (allow-listed for the flooding tenant through the egress policy).
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clients.runs import run_result, start_run
from services import tenants
from tools.bench.harness import BenchEnv, running_bench_worker
from tools.bench.runner import echo_steps, seed_tenant
from tools.bench.stats import percentile

QUIET_RUNS = 5


class _Slow(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return

    def do_GET(self) -> None:  # noqa: N802
        time.sleep(float(self.path.rsplit("/", 1)[-1]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@contextmanager
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _run(env: BenchEnv, tenant: str, steps: list[dict]) -> float:
    """One run, start to result, in seconds."""
    run_id = f"fair-{uuid.uuid4().hex[:12]}"
    began = time.perf_counter()
    handle = await start_run(
        env.client, env.task_queue, {"run_id": run_id, "tenant_id": tenant, "steps": steps}
    )
    result = await run_result(handle)
    if result.status != "succeeded":
        raise RuntimeError(f"fairness run {run_id} ended {result.status}: {result.reason}")
    return time.perf_counter() - began


def _summary(samples: list[float]) -> dict:
    return {
        "runs": len(samples),
        "p50_ms": round(1000 * percentile(samples, 50), 1),
        "max_ms": round(1000 * max(samples), 1),
    }


async def _quiet_alone(env: BenchEnv, tenant: str) -> dict:
    return _summary([await _run(env, tenant, echo_steps(1)) for _ in range(QUIET_RUNS)])


async def _under_flood(
    env: BenchEnv, flood_tenant: str, quiet_tenant: str, url: str, runs: int, slow_s: float
) -> dict:
    """The quiet tenant's runs one after another for as long as the flood lasts."""
    steps = [{"skill": "http", "input": {"url": f"{url}/slow/{slow_s}"}}]
    began = time.perf_counter()
    flood = asyncio.gather(*(_run(env, flood_tenant, steps) for _ in range(runs)))
    await asyncio.sleep(0.5)  # the flood has reached the worker
    samples = []
    while not flood.done() or len(samples) < QUIET_RUNS:
        samples.append(await _run(env, quiet_tenant, echo_steps(1)))
    await flood
    return {**_summary(samples), "flood_seconds": round(time.perf_counter() - began, 1)}


async def fairness_bench(
    env: BenchEnv, flood_runs: int, slow_seconds: float, progress: Callable[[str], None]
) -> dict:
    quiet = seed_tenant(env, f"bench-quiet-{uuid.uuid4().hex[:6]}")
    flood = seed_tenant(env, f"bench-flood-{uuid.uuid4().hex[:6]}")
    default_limit = env.settings.max_steps_in_flight_per_tenant
    with slow_server() as url:
        host_port = url.removeprefix("http://")
        host, port = host_port.split(":")
        tenants.set_egress_allow(env.sessions, flood, [{"scheme": "http", "host": host,
                                                        "port": int(port)}])  # fmt: skip
        async with running_bench_worker(env):
            progress(f"fairness: the quiet tenant's one-step run, {QUIET_RUNS} times alone")
            alone = await _quiet_alone(env, quiet)
            progress(f"fairness: {flood_runs} runs of a {slow_seconds}s step, no step limit")
            unbounded = await _under_flood(env, flood, quiet, url, flood_runs, slow_seconds)
            tenants.set_flight_limits(env.sessions, flood, steps=None)  # back to the default
            progress(f"fairness: the same flood at the default limit of {default_limit} steps")
            bounded = await _under_flood(env, flood, quiet, url, flood_runs, slow_seconds)
    figures = {
        "flood_runs": flood_runs,
        "slow_step_seconds": slow_seconds,
        "worker_activity_slots": env.settings.activity_threads,
        "steps_in_flight_limit": default_limit,
    }
    for name, part in (("alone", alone), ("unbounded", unbounded), ("at_limit", bounded)):
        figures.update({f"quiet_{name}_{key}": value for key, value in part.items()})
    figures["quiet_max_ratio_unbounded_over_alone"] = round(
        unbounded["max_ms"] / alone["max_ms"], 2
    )
    figures["quiet_max_ratio_at_limit_over_alone"] = round(bounded["max_ms"] / alone["max_ms"], 2)
    return figures
