"""Worker memory while N runs are paused at once, and the time to resume them all.

The worker is the real ``python worker.py`` in a subprocess (tools.chaos.processes),
so /proc/<pid>/status gives its RSS alone. Each run is started with a ``pause`` signal
(signal-with-start, as the demo does): it authorizes, starts its trace, then pauses
before its first step. When every run has its pause record, all are resumed; the clock
stops when every run is COMPLETED.
"""

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select

from clients.runs import start_run
from db.models import PauseRecord, Run
from domain.ids import run_workflow_id
from tools.bench.harness import BenchEnv
from tools.bench.runner import echo_steps, seed_tenant
from tools.chaos.processes import WorkerProcess

PAUSED_TASK_QUEUE = "governed-runs-paused"
ACTOR = {"id": "bench", "authority": "TENANT_ADMIN"}
PAUSE = {"reason": "MANUAL_PAUSE", "actor": ACTOR}
MB = 1024 * 1024


@dataclass
class RssTimeline:
    """(seconds since start, RSS MB) samples of the worker, with phase marks."""

    began: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, float]] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.monotonic() - self.began, 2)


async def sample_rss(worker: WorkerProcess, timeline: RssTimeline, stop: asyncio.Event) -> None:
    while not stop.is_set() and worker.alive():
        rss, _ = worker.rss()
        timeline.samples.append((round(time.monotonic() - timeline.began, 2), rss / MB))
        await asyncio.sleep(1.0)


def count_rows(env: BenchEnv, model: type, tenant_id: str, **where: str) -> int:
    stmt = select(func.count()).select_from(model).where(model.tenant_id == tenant_id)
    for column, value in where.items():
        stmt = stmt.where(getattr(model, column) == value)
    with env.sessions() as session:
        return session.scalar(stmt) or 0


async def wait_for(
    label: str,
    target: int,
    current: Callable[[], int],
    worker: WorkerProcess,
    progress: Callable[[str], None],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while (done := await asyncio.to_thread(current)) < target:
        if not worker.alive():
            raise RuntimeError(f"the worker exited; see {worker.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: {done}/{target} after {timeout:.0f}s")
        if time.monotonic() - last_report > 10:
            progress(
                f"  paused runs: {label} {done:,}/{target:,}, worker RSS "
                f"{worker.rss()[0] / MB:.0f} MB"
            )
            last_report = time.monotonic()
        await asyncio.sleep(0.5)


async def in_parallel(jobs: list[Callable[[], object]], concurrency: int) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(job: Callable) -> None:  # noqa: ANN001
        async with limit:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def paused_bench(
    env: BenchEnv,
    runs: int,
    progress: Callable[[str], None],
    concurrency: int = 64,
    timeout: float = 3600,
) -> dict:
    """Pause ``runs`` runs at once in one worker process, then resume them all."""
    tenant = seed_tenant(env, f"bench-paused-{uuid.uuid4().hex[:6]}")
    worker = WorkerProcess(
        env.server.address, env.settings.resolved_database_url(), PAUSED_TASK_QUEUE, env.data_dir
    )
    worker.start()
    await asyncio.to_thread(worker.wait_ready)
    await asyncio.sleep(1.0)
    idle_rss = worker.rss()[0]
    timeline, stop = RssTimeline(), asyncio.Event()
    sampler = asyncio.create_task(sample_rss(worker, timeline, stop))
    run_ids = [f"paused-{tenant}-{i}" for i in range(runs)]
    try:
        progress(f"  paused runs: starting {runs:,} runs paused at their first step")
        began = time.monotonic()
        starts = [
            lambda r=run_id: start_run(
                env.client,
                PAUSED_TASK_QUEUE,
                {"run_id": r, "tenant_id": tenant, "steps": echo_steps(1)},
                start_signal=("pause", PAUSE),
            )
            for run_id in run_ids
        ]
        await in_parallel(starts, concurrency)
        timeline.mark("started")
        await wait_for(
            "paused", runs, lambda: count_rows(env, PauseRecord, tenant), worker, progress, timeout
        )
        pause_seconds = time.monotonic() - began
        timeline.mark("all paused")
        await asyncio.sleep(2.0)  # let the worker settle with every run paused
        paused_rss, paused_peak = worker.rss()
        progress(
            f"  paused runs: all {runs:,} paused in {pause_seconds:.1f}s, worker RSS "
            f"{paused_rss / MB:.0f} MB; resuming them all"
        )
        resumed_at = time.monotonic()
        timeline.mark("resume sent")
        resumes = [
            lambda r=run_id: env.client.get_workflow_handle(run_workflow_id(r)).signal(
                "resume", {"actor": ACTOR}
            )
            for run_id in run_ids
        ]
        await in_parallel(resumes, concurrency)
        signal_seconds = time.monotonic() - resumed_at
        await wait_for(
            "completed",
            runs,
            lambda: count_rows(env, Run, tenant, phase="COMPLETED"),
            worker,
            progress,
            timeout,
        )
        resume_seconds = time.monotonic() - resumed_at
        timeline.mark("all completed")
        final_rss, peak_rss = worker.rss()
    finally:
        stop.set()
        await sampler
        worker.stop()
    return {
        "runs": runs,
        "worker_rss_idle_mb": round(idle_rss / MB, 1),
        "worker_rss_all_paused_mb": round(paused_rss / MB, 1),
        "worker_rss_peak_mb": round(max(peak_rss, paused_peak) / MB, 1),
        "worker_rss_after_mb": round(final_rss / MB, 1),
        "pause_all_seconds": round(pause_seconds, 1),
        "resume_signals_seconds": round(signal_seconds, 1),
        "resume_all_seconds": round(resume_seconds, 1),
        "resumed_runs_per_second": round(runs / resume_seconds, 1),
        "rss_timeline": {"samples": timeline.samples, "marks": timeline.marks},
    }
