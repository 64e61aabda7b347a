"""Benchmark and chaos commands: ``bench`` (what governance costs) and ``chaos`` (what a
crash costs). Both start everything they need themselves (an embedded server in a temp
data dir, workers, a private PostgreSQL cluster where one is needed) and remove it after.
Progress goes to stderr, the figures to stdout (``--json`` for machines)."""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from cli.context import CliError, Context, Json, command, output

app = typer.Typer()


def _whole(text: str, kind: str, least: int, refusal: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"invalid {kind} value: {text!r}") from None
    if value < least:
        raise typer.BadParameter(f"{text!r}: {refusal}")
    return value


def positive(text: str) -> int:
    return _whole(text, "positive", 1, "must be at least 1")


def non_negative(text: str) -> int:
    return _whole(text, "non_negative", 0, "must be 0 or more")


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _count(help: str, parser: Callable[[str], int] = positive) -> Any:
    """A whole-number option whose help says its default."""
    return typer.Option(parser=parser, help=help, show_default=False)


Database = Literal["sqlite", "postgres"]


@command(app, "bench", help="governed vs bare runs, stale scan, paused-runs memory")
async def bench(
    ctx: Context,
    runs: Annotated[int, _count("runs of each kind (default 200)")] = 200,
    steps: Annotated[int, _count("steps per run, k (default 8)")] = 8,
    concurrency: Annotated[int, _count("runs in flight (default 8)")] = 8,
    unloaded_runs: Annotated[int, _count("runs of each kind one at a time (default 30)")] = 30,
    database: Annotated[
        Database,
        typer.Option(help="app database: a fresh SQLite file, or a private PostgreSQL cluster"),
    ] = "sqlite",
    database_url: Annotated[
        str | None, typer.Option(help="use this (empty or bench-only) app database instead")
    ] = None,
    postgres_url: Annotated[
        str | None, typer.Option(help="stale scan on this server (default: a private cluster)")
    ] = None,
    stale_rows: Annotated[
        int, _count("expectation rows for the stale scan (default 1,000,000)")
    ] = 1_000_000,
    paused_runs: Annotated[int, _count("runs paused at once (default 10,000)")] = 10_000,
    drop_page_cache: Annotated[
        bool,
        typer.Option(
            "--drop-page-cache",
            help="cold stale scan: also drop the OS page cache (root; slows the whole machine "
            "briefly)",
        ),
    ] = False,
    skip_stale_scan: Annotated[bool, typer.Option("--skip-stale-scan")] = False,
    skip_paused: Annotated[bool, typer.Option("--skip-paused")] = False,
    skip_fairness: Annotated[bool, typer.Option("--skip-fairness")] = False,
    flood_runs: Annotated[
        int, _count("fairness: the flooding tenant's runs of one slow step (default 120)")
    ] = 120,
    plot: Annotated[
        Path | None, typer.Option(metavar="PATH", help="write the PNG plot here")
    ] = None,
    as_json: Json = False,
) -> None:
    from tools.bench.plot import plot as plot_png
    from tools.bench.report import text_report
    from tools.bench.suite import BenchOptions, run_bench

    opts = BenchOptions(
        runs=runs,
        steps=steps,
        concurrency=concurrency,
        unloaded_runs=unloaded_runs,
        database=database,
        database_url=database_url,
        postgres_url=postgres_url,
        stale_rows=stale_rows,
        drop_page_cache=drop_page_cache,
        paused_runs=paused_runs,
        skip_stale_scan=skip_stale_scan,
        skip_paused=skip_paused,
        skip_fairness=skip_fairness,
        fairness_flood_runs=flood_runs,
    )
    try:
        outcome = await run_bench(ctx.settings, opts, progress)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    if plot:
        outcome.results["plot"] = str(plot_png(outcome.results, outcome.samples, plot))
        progress(f"plot written to {plot}")
    output(as_json, outcome.results, text_report)


@command(app, "chaos", help="governed runs while workers, server and database crash")
async def chaos(
    ctx: Context,
    runs: Annotated[int, _count("governed runs (default 500)")] = 500,
    steps: Annotated[int, _count("steps per run (default 8)")] = 8,
    worker_kills: Annotated[int, _count("SIGKILLs of the worker (default 50)", non_negative)] = 50,
    server_restarts: Annotated[
        int, _count("crash-restarts of the embedded Temporal server (default 5)", non_negative)
    ] = 5,
    db_restarts: Annotated[
        int, _count("restarts of PostgreSQL (default 5; needs --database postgres)", non_negative)
    ] = 5,
    db_outages: Annotated[
        int,
        _count("PostgreSQL outages mid-run (default 0; needs --database postgres)", non_negative),
    ] = 0,
    db_outage_seconds: Annotated[
        float,
        typer.Option(help="how long each outage keeps PostgreSQL down (default 60)", min=1.0),
    ] = 60.0,
    database: Annotated[
        Database,
        typer.Option(
            help="app database: a private PostgreSQL cluster (default) or SQLite",
            show_default=False,
        ),
    ] = "postgres",
    seed: Annotated[int, typer.Option(help="seed of the fault schedule")] = 9,
    as_json: Json = False,
) -> None:
    from tools.chaos.driver import ChaosOptions, run_chaos
    from tools.chaos.report import chaos_text

    if database == "sqlite" and (db_restarts or db_outages):
        flag = "--db-restarts" if db_restarts else "--db-outages"
        raise CliError(f"{flag} needs --database postgres (SQLite is a file, not a server)")
    opts = ChaosOptions(
        runs=runs,
        steps=steps,
        worker_kills=worker_kills,
        server_restarts=server_restarts,
        db_restarts=db_restarts,
        db_outages=db_outages,
        db_outage_seconds=db_outage_seconds,
        database=database,
        seed=seed,
    )
    try:
        report = await run_chaos(ctx.settings, opts, progress)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    output(as_json, report, chaos_text)
    if not report["verdict"]["passed"]:
        raise CliError("chaos verification FAILED: " + "; ".join(report["verdict"]["problems"]))
