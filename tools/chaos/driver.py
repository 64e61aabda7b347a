"""``starter.py chaos``: N governed runs in batches, a fault in each batch, then verify.

The faults (worker kills, server crash-restarts, database crash-restarts) are shuffled
with a seed. Each round starts a batch of runs, waits a random 0.05-1 s (less if a run
of the batch finishes first) so the fault lands while runs are mid-flight, injects the
fault, repairs it, and waits until every run that was in flight has finished. Recovery
is the time from the fault to the first run finalized after the repair; settle, to the
last run that was in flight. Run starts that hit a dead server are retried (a start
that reached the server before it died is found as "already in use", counted once).
"""

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from clients.runs import RunRequestError, start_run
from db import migrate
from db.engine import make_engine, make_session_factory
from domain.ids import run_workflow_id
from runtime.settings import Settings
from runtime.temporal_client import connect_when_ready
from services import tenants
from tools.chaos.faults import DB, DB_OUTAGE, SERVER, WORKER, Infra
from tools.chaos.pgcluster import PostgresUnavailableError, PrivatePostgres
from tools.chaos.tracker import CompletionTracker
from tools.chaos.verify import verify

CHAOS_TASK_QUEUE = "governed-runs-chaos"
CHAOS_TENANT = "chaos"
RUNNING = WorkflowExecutionStatus.RUNNING
FAULT_TIMEOUT = 180.0  # seconds a fault may take to recover before chaos moves on


@dataclass
class ChaosOptions:
    runs: int = 500
    steps: int = 8
    worker_kills: int = 50
    server_restarts: int = 5
    db_restarts: int = 5
    db_outages: int = 0  # PostgreSQL held down for db_outage_seconds, mid-run
    db_outage_seconds: float = 60.0
    database: str = "postgres"
    seed: int = 9
    start_timeout: float = 300.0  # a run start is retried this long through the faults
    finish_timeout: float = 600.0  # after the last fault, for every run to finish


def schedule(opts: ChaosOptions) -> list[str]:
    faults = [WORKER] * opts.worker_kills + [SERVER] * opts.server_restarts
    faults += [DB] * opts.db_restarts + [DB_OUTAGE] * opts.db_outages
    random.Random(opts.seed).shuffle(faults)
    return faults


def batches(runs: int, rounds: int) -> list[int]:
    base, extra = divmod(runs, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


async def start_with_retry(client: Client, payload: dict, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await start_run(client, CHAOS_TASK_QUEUE, payload)
            return
        except RunRequestError:
            return  # the first attempt reached the server before the fault
        except (RPCError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def wait_closed(client: Client, run_ids: list[str], deadline: float) -> None:
    """Until every run's workflow has closed in Temporal (its finalize transaction can
    commit before the workflow task that completes the workflow is done)."""
    open_ids = list(run_ids)
    while open_ids and time.monotonic() < deadline:
        states = await asyncio.gather(
            *(client.get_workflow_handle(run_workflow_id(r)).describe() for r in open_ids[:50])
        )
        closed = {r for r, d in zip(open_ids, states, strict=False) if d.status != RUNNING}
        open_ids = [r for r in open_ids if r not in closed]
        if open_ids and not closed:
            await asyncio.sleep(0.5)


def open_database(opts: ChaosOptions, data_dir: Path) -> tuple[PrivatePostgres | None, str]:
    if opts.database == "sqlite":
        return None, f"sqlite:///{data_dir / 'chaos.db'}"
    try:
        pg = PrivatePostgres()
    except PostgresUnavailableError as exc:
        raise RuntimeError(f"chaos needs PostgreSQL for --database postgres: {exc}") from exc
    try:
        return pg, pg.start()
    except PostgresUnavailableError as exc:
        pg.remove()
        raise RuntimeError(f"the private PostgreSQL cluster did not start: {exc}") from exc


async def run_chaos(base: Settings, opts: ChaosOptions, progress: Callable[[str], None]) -> dict:
    """Run the chaos scenario end to end; returns the report (figures and verification)."""
    data_dir = Path(tempfile.mkdtemp(prefix="governed-runs-chaos-"))
    pg, database_url = open_database(opts, data_dir)
    infra = Infra(data_dir, database_url, CHAOS_TASK_QUEUE, pg=pg,
                  outage_seconds=opts.db_outage_seconds)  # fmt: skip
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine)
        sessions = make_session_factory(engine)
        tenants.add_tenant(sessions, CHAOS_TENANT, name="chaos", budget="1000000", exist_ok=True)
        tenants.set_flight_limits(
            sessions, CHAOS_TENANT, runs=tenants.INT32_MAX, steps=tenants.INT32_MAX
        )
        address = await infra.start_server()
        # Ready means the frontend answers for the namespace, not just an open port.
        client = await connect_when_ready(address, base.temporal_namespace, timeout=120)
        await infra.start_worker()
        progress(
            f"chaos: server {address}, database {opts.database}, worker pid "
            f"{infra.worker.pid}; {opts.runs} runs, faults: {opts.worker_kills} worker "
            f"kills, {opts.server_restarts} server and {opts.db_restarts} database "
            f"restarts, {opts.db_outages} database outages of {opts.db_outage_seconds:g} s"
        )
        began = time.monotonic()
        faults, run_ids = await drive(client, sessions, infra, opts, progress)
        elapsed = time.monotonic() - began
        progress("chaos: verifying")
        verification = await verify(client, sessions, run_ids, CHAOS_TASK_QUEUE, base)
        return {
            "config": {
                "runs": opts.runs,
                "steps": opts.steps,
                "worker_kills": opts.worker_kills,
                "server_restarts": opts.server_restarts,
                "db_restarts": opts.db_restarts,
                "db_outages": opts.db_outages,
                "db_outage_seconds": opts.db_outage_seconds,
                "database": opts.database,
                "seed": opts.seed,
            },
            "elapsed_seconds": round(elapsed, 1),
            "faults": faults,
            "unplanned_worker_exits": infra.unplanned_worker_exits,
            "worker_starts": infra.worker.starts if infra.worker else 0,
            **verification,
        }
    finally:
        await infra.close()
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


async def land_mid_flight(tracker: CompletionTracker, batch: list[str], delay: float) -> None:
    """Wait ``delay`` seconds, or less: until the batch's first run finishes (the others
    started with it, so they are mid-flight then)."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and not await tracker.finished(batch):
        await asyncio.sleep(0.02)


async def one_fault(tracker: CompletionTracker, infra: Infra, kind: str, batch: list[str]) -> dict:
    """Inject ``kind`` while ``batch`` runs; measure until every run in flight has finished.

    recovery = fault → the first run finalized after the repair (service is back);
    settle = fault → the last run that was in flight at the fault finalized.
    """
    in_flight = sorted(set(batch) - set(await tracker.finished(batch)))
    fault_at = datetime.now(UTC)
    down = await infra.inject(kind)
    repaired = fault_at + timedelta(seconds=down)
    first = last = None
    if in_flight:
        last = await tracker.all_finished(in_flight, timeout=FAULT_TIMEOUT)
        first = await tracker.first_finalized_after(repaired, timeout=0)
    await infra.ensure_worker()

    def since_fault(moment: datetime | None) -> float | None:
        return None if moment is None else round((moment - fault_at).total_seconds(), 2)

    return {
        "kind": kind,
        "in_flight": len(in_flight),
        "down_seconds": round(down, 2),
        "recovery_seconds": since_fault(first),
        "settle_seconds": since_fault(last),
    }


async def drive(
    client: Client,
    sessions: sessionmaker[Session],
    infra: Infra,
    opts: ChaosOptions,
    progress: Callable[[str], None],
) -> tuple[list[dict], list[str]]:
    """Batches of runs with a fault in each; returns the faults and the run ids."""
    plan = schedule(opts)
    if opts.runs < 2 * len(plan) + 1:
        raise RuntimeError(
            f"--runs {opts.runs}: need at least two runs per fault ({len(plan)} faults) plus one"
        )
    rng = random.Random(opts.seed + 1)
    tracker = CompletionTracker(sessions, CHAOS_TENANT)
    run_ids: list[str] = []
    starters: list[asyncio.Task] = []
    faults: list[dict] = []
    steps = [{"skill": "echo", "input": {"text": f"step {i}"}} for i in range(opts.steps)]
    try:
        for round_no, size in enumerate(batches(opts.runs, len(plan) + 1)):
            batch = [f"chaos-{len(run_ids) + i:05d}" for i in range(size)]
            run_ids += batch
            for run_id in batch:
                payload = {"run_id": run_id, "tenant_id": CHAOS_TENANT, "steps": steps}
                starters.append(
                    asyncio.create_task(start_with_retry(client, payload, opts.start_timeout))
                )
            if round_no == len(plan):
                break
            await land_mid_flight(tracker, batch, rng.uniform(0.05, 1.0))
            fault = await one_fault(tracker, infra, plan[round_no], batch)
            faults.append(fault)
            finished = len(await tracker.finished())
            progress(
                f"  fault {round_no + 1}/{len(plan)} {fault['kind']}: {fault['in_flight']} runs "
                f"in flight, down {fault['down_seconds']}s, first run finished after "
                f"{fault['recovery_seconds']}s, all in flight after {fault['settle_seconds']}s; "
                f"{finished}/{opts.runs} runs finished"
            )
        await asyncio.gather(*starters)
        progress(f"chaos: all {len(run_ids)} runs started; waiting for them to finish")
        deadline = time.monotonic() + opts.finish_timeout
        while len(await tracker.finished()) < len(run_ids) and time.monotonic() < deadline:
            await infra.ensure_worker()
            await asyncio.sleep(0.5)
        await wait_closed(client, run_ids, deadline)
    finally:
        for task in starters:
            task.cancel()
    return faults, run_ids
