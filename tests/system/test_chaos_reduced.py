"""A reduced chaos run, so that `starter.py chaos` cannot rot: tens of governed runs while
the real `python worker.py` is SIGKILLed and restarted and the embedded Temporal server is
crashed and restarted on its SQLite file (and, on a private PostgreSQL cluster, the
database is crash-restarted too). Afterwards: 0 duplicates and 0 losses.
"""

import pytest

from runtime.settings import Settings
from tools.chaos.driver import ChaosOptions, run_chaos
from tools.chaos.pgcluster import PostgresUnavailableError, postgres_bindir

pytestmark = pytest.mark.timeout(150)


def assert_nothing_lost_or_duplicated(report: dict, opts: ChaosOptions) -> None:
    runs = opts.runs
    assert report["verdict"] == {"passed": True, "problems": []}
    assert report["outcomes"] == {"COMPLETED succeeded": runs}  # every run ended, none lost
    assert report["workflows"] == {"COMPLETED": runs}
    assert set(report["duplicates"]) >= {"trace_steps", "domain_acks", "audit_ledger", "runs"}
    assert sum(report["duplicates"].values()) == 0
    assert report["missing_acks"] == report["drift_acks"] == report["stale_runs"] == 0
    assert report["chains"] == {"VERIFIED": runs}
    totals = report["reconciliation"]
    assert totals["stale"] == totals["late"] == totals["incomplete"] == 0
    kinds = [f["kind"] for f in report["faults"]]
    assert kinds.count("worker") == opts.worker_kills
    assert kinds.count("server") == opts.server_restarts
    assert kinds.count("db") == opts.db_restarts
    assert kinds.count("db_outage") == opts.db_outages
    assert sum(f["in_flight"] for f in report["faults"]) > 0  # the faults hit live runs
    hit = [f for f in report["faults"] if f["in_flight"]]
    assert all(f["settle_seconds"] is not None for f in hit), report["faults"]  # fmt: skip
    assert report["worker_starts"] == 1 + opts.worker_kills + report["unplanned_worker_exits"]


async def test_chaos_on_sqlite_loses_and_duplicates_nothing():
    opts = ChaosOptions(runs=24, steps=8, worker_kills=3, server_restarts=1, db_restarts=0,
                        database="sqlite", seed=1)  # fmt: skip
    report = await run_chaos(Settings(_env_file=None), opts, lambda line: None)
    assert_nothing_lost_or_duplicated(report, opts)


async def test_chaos_on_private_postgres_with_database_restarts():
    try:
        postgres_bindir()
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    opts = ChaosOptions(runs=20, steps=8, worker_kills=1, server_restarts=1, db_restarts=2,
                        database="postgres", seed=2)  # fmt: skip
    report = await run_chaos(Settings(_env_file=None), opts, lambda line: None)
    assert_nothing_lost_or_duplicated(report, opts)


async def test_a_postgres_outage_mid_run_fails_no_run_and_loses_nothing():
    """PostgreSQL down for 20 s while runs are mid-flight (patch durable-writes: before it,
    a step failed its run after 3 attempts, ~3 s, and a governance write rolled it back
    after 5). `starter.py chaos --db-outages 1 --db-outage-seconds 600` is the long form."""
    try:
        postgres_bindir()
    except PostgresUnavailableError as exc:
        pytest.skip(str(exc))
    opts = ChaosOptions(runs=10, steps=8, worker_kills=0, server_restarts=0, db_restarts=0,
                        db_outages=1, db_outage_seconds=20, seed=3)  # fmt: skip
    report = await run_chaos(Settings(_env_file=None), opts, lambda line: None)
    assert_nothing_lost_or_duplicated(report, opts)
    (outage,) = report["faults"]
    assert outage["down_seconds"] >= 20 and outage["in_flight"] > 0
