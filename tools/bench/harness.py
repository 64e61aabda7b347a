"""What the benchmarks run on: an embedded server in a temp data dir, a database, a worker.

Everything is private to one benchmark: a fresh data directory, free ports, a fresh
SQLite file (or the given database URL), and an in-process worker that serves both
RunWorkflow (all governance on) and BareWorkflow on one task queue, with the activity
probe installed.
"""

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db import migrate
from db.engine import make_engine, make_session_factory
from runtime.embedded_temporal import EmbeddedTemporal
from runtime.sandbox_bytecode import cache_workflow_bytecode
from runtime.settings import Settings
from runtime.temporal_client import connect_when_ready, ensure_search_attributes
from runtime.worker_factory import WORKFLOWS, build_activities, workflow_runner
from runtime.worker_options import worker_options
from tools.bench.bare import BareWorkflow, noop
from tools.bench.probe import ActivityProbe
from tools.chaos.processes import free_port

BENCH_TASK_QUEUE = "governed-runs-bench"


@dataclass
class BenchEnv:
    settings: Settings
    data_dir: Path
    server: EmbeddedTemporal
    client: Client
    engine: Engine
    sessions: sessionmaker[Session]
    probe: ActivityProbe
    task_queue: str = BENCH_TASK_QUEUE


def bench_settings(base: Settings, data_dir: Path, database_url: str | None) -> Settings:
    """The operator's settings with a private data dir, database and server."""
    return base.model_copy(
        update={
            "data_dir": data_dir,
            "database_url": database_url or f"sqlite:///{data_dir / 'bench.db'}",
            "temporal_address": None,
            "temporal_port": free_port(),
            "temporal_ui_port": free_port(),
            "task_queue": BENCH_TASK_QUEUE,
            "http_enabled": False,
            "reconcile_schedule_enabled": False,
            "event_reactor_enabled": False,
        }
    )


def bench_worker(env: BenchEnv, http: httpx.Client) -> Worker:
    """The production worker's options (runtime.worker_factory) plus BareWorkflow and the probe."""
    settings = env.settings
    workflows = [*WORKFLOWS, BareWorkflow]
    cache_workflow_bytecode(workflows)  # both kinds alike
    return Worker(
        env.client,
        task_queue=env.task_queue,
        workflows=workflows,
        activities=[*build_activities(settings, env.sessions, http), noop],
        workflow_runner=workflow_runner(),
        interceptors=[env.probe],
        **worker_options(settings),
    )


@contextlib.asynccontextmanager
async def bench_env(
    base: Settings, database_url: str | None = None, keep_dir: bool = False
) -> AsyncIterator[BenchEnv]:
    """Database, embedded server and client; removed afterwards (unless ``keep_dir``)."""
    data_dir = Path(tempfile.mkdtemp(prefix="governed-runs-bench-"))
    settings = bench_settings(base, data_dir, database_url)
    engine = make_engine(settings.resolved_database_url())
    migrate.upgrade(engine)
    # Started from this (long-lived) thread: the server gets SIGTERM when its parent
    # thread ends (PDEATHSIG), so it must not be started from a pool thread.
    server = EmbeddedTemporal(data_dir, settings.temporal_port, settings.temporal_ui_port)
    server.start()
    try:
        client = await connect_when_ready(server.address, settings.temporal_namespace, 120)
        await ensure_search_attributes(client)
        yield BenchEnv(
            settings=settings,
            data_dir=data_dir,
            server=server,
            client=client,
            engine=engine,
            sessions=make_session_factory(engine),
            probe=ActivityProbe(),
        )
    finally:
        server.stop()
        engine.dispose()
        if not keep_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_bench_worker(env: BenchEnv) -> AsyncIterator[Worker]:
    with httpx.Client() as http:
        worker = bench_worker(env, http)
        async with worker:
            yield worker
