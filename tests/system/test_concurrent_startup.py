"""Three `python worker.py` started together against one empty app database (the scale
path's `--scale worker=3`): the schema is migrated once, under the migration lock, and all
three workers come up and stay up. A failing wait prints the worker's own output."""

import asyncio

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db.engine import make_engine
from db.migrate import alembic_config
from tools.chaos.processes import WorkerProcess

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_three_workers_migrate_an_empty_database_once(
    backend, dev_env, fresh_database, tmp_path, task_queue
):
    url = fresh_database(backend)
    address = dev_env.client.service_client.config.target_host
    workers = [WorkerProcess(address, url, f"{task_queue}-{i}", tmp_path) for i in range(3)]
    try:
        for worker in workers:  # together: no worker waits for another before starting
            worker.start()
        await asyncio.gather(*(asyncio.to_thread(w.wait_ready, 120) for w in workers))
        await asyncio.sleep(1.0)  # and they stay up
        for worker in workers:
            assert worker.alive(), worker.output_tail()
            assert "UniqueViolation" not in worker.output_tail()
    finally:
        for worker in workers:
            worker.kill()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        assert versions == [(head,)]
        assert "idempotency_ledger" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
