"""worker.py runs the event reactor: an event written before a SIGKILL of the worker is
delivered by the restarted worker, and its alert is raised once."""

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from db.models import Alert, EventDelivery, ReactorHeartbeat
from domain.ids import derive_id
from domain.reconciliation import TOPIC_STALE
from events.handlers import AUDIT_GROUP
from services.events import emit
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.reconcile_support import wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader(db_engine: Engine) -> Iterator[Engine]:
    engine = create_engine(db_engine.url)
    yield engine
    engine.dispose()


def scalar(reader: Engine, stmt):  # noqa: ANN001, ANN201
    with reader.connect() as conn:
        return conn.execute(stmt).scalar()


def worker(  # noqa: ANN001
    processes: ProcessOutput, db_engine: Engine, dev_env, task_queue: str, **env: str
) -> subprocess.Popen:
    settings_env = {
        "DATABASE_URL": db_engine.url.render_as_string(hide_password=False),
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TASK_QUEUE": task_queue,
        "HTTP_ENABLED": "false",
        "RECONCILE_SCHEDULE_ENABLED": "false",
        "REACTOR_HEARTBEAT_INTERVAL_SECONDS": "1",
        **env,
    }
    return processes.popen(
        "worker.py",
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env={**os.environ, **settings_env, "PYTHONUNBUFFERED": "1"},
    )


def idle_since(reader: Engine, since: datetime) -> bool:
    """The reactor started after ``since`` and is asleep: it beats about every second
    while it polls, so a last beat older than two seconds means it is in its long wait."""
    stmt = select(func.max(ReactorHeartbeat.beat_at)).where(
        ReactorHeartbeat.group_name == AUDIT_GROUP, ReactorHeartbeat.started_at >= since
    )
    last = scalar(reader, stmt)
    if last is None:
        return False
    last = last if last.tzinfo else last.replace(tzinfo=UTC)
    return (datetime.now(UTC) - last).total_seconds() > 2


async def test_worker_sigkill_then_restart_delivers_the_alert_once(
    dev_env, db_engine, sessions, reader, task_queue, processes
):
    tenant, run_id = f"t-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    started = datetime.now(UTC)
    # A long poll interval: after its first poll, this worker will not look again.
    proc = worker(processes, db_engine, dev_env, task_queue, REACTOR_POLL_INTERVAL_SECONDS="60")
    try:
        await wait_until(lambda: idle_since(reader, started), timeout=60, what="an idle reactor")
        key = f"test/{run_id}"
        with sessions.begin() as session:
            payload = {"severity": "HIGH", "domain": "orchestrator", "cause": "TERMINATED",
                       "missing": [["orchestrator", "finalize_run"]]}  # fmt: skip
            emit(session, key=key, topic=TOPIC_STALE, tenant_id=tenant, run_id=run_id,
                 payload=payload)  # fmt: skip
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    event_id = derive_id("event", key, TOPIC_STALE)
    delivered = select(func.count()).select_from(EventDelivery)
    delivered = delivered.where(
        EventDelivery.event_id == event_id, EventDelivery.delivered_at.is_not(None)
    )
    assert scalar(reader, delivered) == 0
    alerts = select(func.count()).select_from(Alert).where(Alert.tenant_id == tenant)
    assert scalar(reader, alerts) == 0

    proc = worker(processes, db_engine, dev_env, task_queue)
    try:
        await wait_until(lambda: scalar(reader, alerts) > 0, timeout=60, what="the alert")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # graceful: the reactor stops with the worker
    assert scalar(reader, alerts) == 1
    assert scalar(reader, delivered) == 1
