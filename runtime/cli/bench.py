"""Benchmark and chaos commands: ``bench`` (what governance costs) and ``chaos`` (what a
crash costs). Both start everything they need themselves (an embedded server in a temp
data dir, workers, a private PostgreSQL cluster where one is needed) and remove it after.
Progress goes to stderr, the figures to stdout (``--json`` for machines)."""

import argparse
import sys
from pathlib import Path

from runtime.cli.context import CliError, Context, add_json_flag, output


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more")
    return value


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="governed vs bare runs, stale scan, paused-runs memory")
    p.add_argument("--runs", type=positive, default=200, help="runs of each kind (default 200)")
    p.add_argument("--steps", type=positive, default=8, help="steps per run, k (default 8)")
    p.add_argument("--concurrency", type=positive, default=8, help="runs in flight (default 8)")
    p.add_argument(
        "--unloaded-runs",
        type=positive,
        default=30,
        help="runs of each kind one at a time (default 30)",
    )
    p.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="app database: a fresh SQLite file, or a private PostgreSQL cluster",
    )
    p.add_argument("--database-url", help="use this (empty or bench-only) app database instead")
    p.add_argument("--postgres-url", help="stale scan on this server (default: a private cluster)")
    p.add_argument(
        "--stale-rows",
        type=positive,
        default=1_000_000,
        help="expectation rows for the stale scan (default 1,000,000)",
    )
    p.add_argument(
        "--paused-runs", type=positive, default=10_000, help="runs paused at once (default 10,000)"
    )
    p.add_argument(
        "--drop-page-cache",
        action="store_true",
        help="cold stale scan: also drop the OS page cache (root; slows the whole machine briefly)",
    )
    p.add_argument("--skip-stale-scan", action="store_true")
    p.add_argument("--skip-paused", action="store_true")
    p.add_argument("--skip-fairness", action="store_true")
    p.add_argument(
        "--flood-runs",
        type=positive,
        default=120,
        help="fairness: the flooding tenant's runs of one slow step (default 120)",
    )
    p.add_argument("--plot", type=Path, metavar="PATH", help="write the PNG plot here")
    add_json_flag(p)
    p.set_defaults(handler=bench)

    p = sub.add_parser("chaos", help="governed runs while workers, server and database crash")
    p.add_argument("--runs", type=positive, default=500, help="governed runs (default 500)")
    p.add_argument("--steps", type=positive, default=8, help="steps per run (default 8)")
    p.add_argument(
        "--worker-kills", type=non_negative, default=50, help="SIGKILLs of the worker (default 50)"
    )
    p.add_argument(
        "--server-restarts",
        type=non_negative,
        default=5,
        help="crash-restarts of the embedded Temporal server (default 5)",
    )
    p.add_argument(
        "--db-restarts",
        type=non_negative,
        default=5,
        help="restarts of PostgreSQL (default 5; needs --database postgres)",
    )
    p.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="postgres",
        help="app database: a private PostgreSQL cluster (default) or SQLite",
    )
    p.add_argument("--seed", type=int, default=9, help="seed of the fault schedule")
    add_json_flag(p)
    p.set_defaults(handler=chaos)


async def bench(ctx: Context, args: argparse.Namespace) -> None:
    from tools.bench.plot import plot
    from tools.bench.report import text_report
    from tools.bench.suite import BenchOptions, run_bench

    opts = BenchOptions(
        runs=args.runs,
        steps=args.steps,
        concurrency=args.concurrency,
        unloaded_runs=args.unloaded_runs,
        database=args.database,
        database_url=args.database_url,
        postgres_url=args.postgres_url,
        stale_rows=args.stale_rows,
        drop_page_cache=args.drop_page_cache,
        paused_runs=args.paused_runs,
        skip_stale_scan=args.skip_stale_scan,
        skip_paused=args.skip_paused,
        skip_fairness=args.skip_fairness,
        fairness_flood_runs=args.flood_runs,
    )
    try:
        outcome = await run_bench(ctx.settings, opts, progress)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if args.plot:
        outcome.results["plot"] = str(plot(outcome.results, outcome.samples, args.plot))
        progress(f"plot written to {args.plot}")
    output(args, outcome.results, text_report)


async def chaos(ctx: Context, args: argparse.Namespace) -> None:
    from tools.chaos.driver import ChaosOptions, run_chaos
    from tools.chaos.report import chaos_text

    if args.database == "sqlite" and args.db_restarts:
        raise CliError("--db-restarts needs --database postgres (SQLite is a file, not a server)")
    opts = ChaosOptions(
        runs=args.runs,
        steps=args.steps,
        worker_kills=args.worker_kills,
        server_restarts=args.server_restarts,
        db_restarts=args.db_restarts,
        database=args.database,
        seed=args.seed,
    )
    try:
        report = await run_chaos(ctx.settings, opts, progress)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    output(args, report, chaos_text)
    if not report["verdict"]["passed"]:
        raise CliError("chaos verification FAILED: " + "; ".join(report["verdict"]["problems"]))
