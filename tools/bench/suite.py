"""``starter.py bench``: every benchmark in one process, on one embedded server.

1. governed vs bare runs, unloaded (one at a time) and loaded (``concurrency`` at a
   time), in ABBA order so that a drift of the machine's load hits both kinds alike;
2. the stale-run scan over ``stale_rows`` expectation rows in PostgreSQL;
3. ``paused_runs`` runs paused at once in a worker subprocess, then all resumed;
4. fairness: a quiet tenant's one-step run alone and while another tenant floods the
   worker with slow steps, unbounded and at the default steps-in-flight limit.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.settings import Settings
from tools.bench import machine
from tools.bench.cpu import CpuUse
from tools.bench.fairness import fairness_bench
from tools.bench.harness import BenchEnv, bench_env, running_bench_worker
from tools.bench.history_profile import history_profile
from tools.bench.paused import paused_bench
from tools.bench.report import evaluate_targets
from tools.bench.runner import BARE, GOVERNED, run_batch, seed_tenant, warm_up
from tools.bench.stale_scan import drop_os_page_cache, stale_scan_bench
from tools.bench.stats import RunSample, figures, ratio
from tools.chaos.pgcluster import PostgresUnavailableError, PrivatePostgres


@dataclass
class BenchOptions:
    runs: int = 200
    steps: int = 8
    concurrency: int = 8
    unloaded_runs: int = 30
    database: str = "sqlite"  # or "postgres": a private cluster started for the benchmark
    database_url: str | None = None
    postgres_url: str | None = None  # the stale scan's server; default: a private cluster
    stale_rows: int = 1_000_000
    paused_runs: int = 10_000
    drop_page_cache: bool = False  # cold stale scan: also drop the OS page cache (root)
    skip_stale_scan: bool = False
    skip_paused: bool = False
    fairness_flood_runs: int = 120
    fairness_slow_seconds: float = 2.0
    skip_fairness: bool = False


@dataclass
class BenchOutcome:
    results: dict
    samples: dict[str, dict[str, list[RunSample]]] = field(default_factory=dict)


async def abba(
    env: BenchEnv, runs: int, steps: int, concurrency: int, progress: Callable[[str], None]
) -> dict[str, tuple[dict, list[RunSample]]]:
    """Governed and bare in the order A B B A, half the runs each time."""
    halves = {GOVERNED: [], BARE: []}
    walls = {GOVERNED: 0.0, BARE: 0.0}
    cpus = {GOVERNED: CpuUse(), BARE: CpuUse()}
    first = max(runs // 2, 1)
    for kind, n in (
        (GOVERNED, first),
        (BARE, first),
        (BARE, runs - first),
        (GOVERNED, runs - first),
    ):
        if n <= 0:
            continue
        batch, samples = await run_batch(env, kind, n, steps, concurrency, progress=progress)
        halves[kind] += samples
        walls[kind] += batch.wall_seconds
        cpus[kind] += batch.cpu
    return {
        kind: (
            figures(kind, halves[kind], steps, concurrency, walls[kind], cpus[kind]).as_dict(),
            halves[kind],
        )
        for kind in (GOVERNED, BARE)
    }


def cpu_bound(loaded: dict, activity_cpu_ms: dict[str, float]) -> dict[str, float]:
    """What the CPU says about the loaded throughput ratio (both kinds CPU-bound on the same
    cores): the ratio of CPU per run, and the ratio there would be if governance cost no
    more than its activity functions' own CPU (its database writes), Temporal's extra
    work for a governed run (activations, local activities, bigger histories) nothing."""
    governed = loaded[GOVERNED]["cpu_ms_per_run"]["total"]
    bare = loaded[BARE]["cpu_ms_per_run"]["total"]
    floor = bare + activity_cpu_ms[GOVERNED] - activity_cpu_ms[BARE]
    return {
        "cpu_ratio": round(ratio(bare, governed), 3),
        "throughput_ratio_ceiling": round(ratio(bare, floor), 3),
    }


def comparison(loaded: dict, unloaded: dict) -> dict[str, float]:
    def r(part: dict, *path: str) -> float:
        g, b = part[GOVERNED], part[BARE]
        for key in path:
            g, b = g[key], b[key]
        return round(ratio(g, b), 3)

    return {
        "throughput_ratio": r(loaded, "runs_per_second"),
        "latency_p50_ratio": r(loaded, "end_to_end_ms", "p50"),
        "latency_p99_ratio": r(loaded, "end_to_end_ms", "p99"),
        "unloaded_latency_p50_ratio": r(unloaded, "end_to_end_ms", "p50"),
        "unloaded_start_p50_ratio": r(unloaded, "start_ms", "p50"),
    }


async def governed_vs_bare(
    env: BenchEnv, opts: BenchOptions, progress: Callable[[str], None], outcome: BenchOutcome
) -> None:
    seed_tenant(env)
    async with running_bench_worker(env):
        progress("warming up")
        await warm_up(env, opts.steps)
        progress(f"unloaded: {opts.unloaded_runs} runs of each kind, one at a time")
        unloaded = await abba(env, opts.unloaded_runs, opts.steps, 1, progress)
        progress(f"loaded: {opts.runs} runs of each kind, {opts.concurrency} at a time")
        loaded = await abba(env, opts.runs, opts.steps, opts.concurrency, progress)
    results = outcome.results
    results["unloaded"] = {kind: figs for kind, (figs, _) in unloaded.items()}
    results["loaded"] = {kind: figs for kind, (figs, _) in loaded.items()}
    results["ratios"] = comparison(results["loaded"], results["unloaded"])
    outcome.samples = {
        "unloaded": {kind: samples for kind, (_, samples) in unloaded.items()},
        "loaded": {kind: samples for kind, (_, samples) in loaded.items()},
    }
    results["history_per_run"] = {
        kind: (await history_profile(env.client, samples[0].workflow_id)).as_dict()
        for kind, (_, samples) in loaded.items()
    }
    results["activity_ms_per_run"] = {}
    for phase, batch in (("unloaded", unloaded), ("loaded", loaded)):
        ids = {s.workflow_id for s in batch[GOVERNED][1]}
        seconds = env.probe.seconds_by_type(ids)
        cpu = env.probe.seconds_by_type(ids, cpu=True)
        counts = env.probe.counts_by_type(ids)
        results["activity_ms_per_run"][phase] = {
            name: {
                "ms": round(1000 * s / len(ids), 2),
                "cpu_ms": round(1000 * cpu[name] / len(ids), 2),
                "count": round(counts[name] / len(ids), 2),
            }
            for name, s in sorted(seconds.items(), key=lambda kv: -kv[1])
        }
    activity_cpu_ms = {}
    for kind, (_, samples) in loaded.items():
        ids = {s.workflow_id for s in samples}
        activity_cpu_ms[kind] = round(
            1000 * sum(env.probe.seconds_by_type(ids, cpu=True).values()) / len(ids), 2
        )
    results["activity_cpu_ms_per_run"] = activity_cpu_ms
    results["ratios"].update(cpu_bound(results["loaded"], activity_cpu_ms))


def stale_scan_part(
    opts: BenchOptions, pg: PrivatePostgres | None, page_size: int, progress: Callable[[str], None]
) -> dict:
    """On --postgres-url (cold = a new connection), else on a private cluster that is
    restarted (and, with --drop-page-cache, the OS page cache dropped) before each cold
    measurement."""
    if opts.postgres_url:
        return stale_scan_bench(opts.postgres_url, opts.stale_rows, page_size, None, progress)
    with contextlib.ExitStack() as stack:
        cluster = pg or stack.enter_context(PrivatePostgres())

        def restart() -> bool:
            cluster.restart()
            return opts.drop_page_cache and drop_os_page_cache()

        return stale_scan_bench(cluster.url, opts.stale_rows, page_size, restart, progress)


async def run_bench(
    base: Settings, opts: BenchOptions, progress: Callable[[str], None]
) -> BenchOutcome:
    """Every benchmark; returns the figures (``results``) and the raw samples for the plot."""
    with contextlib.ExitStack() as stack:
        pg = None
        if opts.database == "postgres" and not opts.database_url:
            pg = stack.enter_context(PrivatePostgres())
        database_url = opts.database_url or (pg.url if pg else None)
        backend = "PostgreSQL" if (database_url or "").startswith("postgresql") else "SQLite"
        outcome = BenchOutcome(results={"machine": machine.describe(backend)})
        outcome.results["config"] = {
            "runs": opts.runs,
            "steps": opts.steps,
            "concurrency": opts.concurrency,
            "unloaded_runs": opts.unloaded_runs,
            "stale_rows": opts.stale_rows,
            "paused_runs": opts.paused_runs,
        }
        async with bench_env(base, database_url) as env:
            await governed_vs_bare(env, opts, progress, outcome)
            if opts.skip_stale_scan:
                outcome.results["stale_scan"] = {"skipped": "--skip-stale-scan"}
            else:
                progress(f"stale scan over {opts.stale_rows:,} expectation rows (PostgreSQL)")
                try:
                    outcome.results["stale_scan"] = stale_scan_part(
                        opts, pg, base.reconcile_page_size, progress
                    )
                except PostgresUnavailableError as exc:
                    outcome.results["stale_scan"] = {"skipped": str(exc)}
            if opts.skip_fairness:
                outcome.results["fairness"] = {"skipped": "--skip-fairness"}
            else:
                outcome.results["fairness"] = await fairness_bench(
                    env, opts.fairness_flood_runs, opts.fairness_slow_seconds, progress
                )
            if opts.skip_paused:
                outcome.results["paused"] = {"skipped": "--skip-paused"}
            else:
                progress(f"paused runs: {opts.paused_runs:,} runs paused at once, then resumed")
                outcome.results["paused"] = await paused_bench(env, opts.paused_runs, progress)
        outcome.results["targets"] = evaluate_targets(outcome.results)
        return outcome
