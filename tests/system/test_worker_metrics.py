"""worker.py serves Prometheus /metrics on its own port: the real process, scraped with httpx
and read with prometheus_client's parser, after its reactor turned an event into an alert."""

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from domain.reconciliation import TOPIC_STALE
from events.handlers import AUDIT_GROUP
from events.notifications import SINK_GROUP
from services.events import emit
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.reconcile_support import wait_until

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"Prometheus metrics on (http://127\.0\.0\.1:\d+/metrics)")


def worker(processes: ProcessOutput, db_engine: Engine, dev_env,  # noqa: ANN001
           task_queue: str) -> subprocess.Popen:  # fmt: skip
    env = {
        "DATABASE_URL": db_engine.url.render_as_string(hide_password=False),
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TASK_QUEUE": task_queue,
        "HTTP_ENABLED": "false",
        "RECONCILE_SCHEDULE_ENABLED": "false",
        "METRICS_ENABLED": "true",
        "METRICS_PORT": "0",  # a free port, logged
    }
    return processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT,
                           env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})  # fmt: skip


def samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def total(found: dict, name: str, **labels: str) -> float:
    return sum(v for got, v in found.get(name, []) if labels.items() <= got.items())


async def test_the_worker_serves_its_metrics(dev_env, db_engine, sessions, task_queue, processes):
    tenant, run_id = f"t-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    proc = worker(processes, db_engine, dev_env, task_queue)
    try:
        url = (await wait_until(lambda: SERVING.search(processes.output(proc)), timeout=60,
                                what="the metrics URL in the log")).group(1)  # fmt: skip
        with sessions.begin() as session:
            payload = {"severity": "HIGH", "domain": "orchestrator", "cause": "TERMINATED",
                       "missing": [["orchestrator", "finalize_run"]]}  # fmt: skip
            emit(session, key=f"test/{run_id}", topic=TOPIC_STALE, tenant_id=tenant,
                 run_id=run_id, payload=payload)  # fmt: skip
        sent = "governed_runs_alerts_sent_total"
        stale = {"topic": TOPIC_STALE, "handler": "audit.alert.stale_run"}

        def alerted() -> dict | None:
            # A live process counts each figure when it happens: the alert inside the
            # handler's transaction, the delivery once it has committed, each reactor
            # group's heartbeat on its own loop. Wait until all are there, or a scrape in
            # between sees some of them.
            found = samples(url)
            ready = [
                total(found, sent, tenant_id=tenant),
                total(found, "governed_runs_events_delivered_total", **stale),
                *(total(found, "governed_runs_reactor_heartbeats_total", group=group)
                  for group in (AUDIT_GROUP, SINK_GROUP)),
            ]  # fmt: skip
            return found if all(ready) else None

        found = await wait_until(
            alerted, timeout=60, what="the alert, its delivery and the heartbeats in /metrics"
        )
        assert total(found, sent, tenant_id=tenant) == 1
        assert total(found, "governed_runs_events_received_total", **stale) >= 1
        assert total(found, "governed_runs_events_delivered_total", **stale) >= 1
        assert total(found, "governed_runs_events_handler_duration_seconds_count", **stale) >= 1
        for group in (AUDIT_GROUP, SINK_GROUP):
            assert total(found, "governed_runs_reactor_heartbeats_total", group=group) >= 1
        assert "process_resident_memory_bytes" in found  # the process collector is there too
        assert not [s for s in found.values() for labels, _ in s if run_id in str(labels)]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    with pytest.raises(httpx.ConnectError):  # stopped with the worker
        httpx.get(url, timeout=5)
