"""worker.py with tracing on (OTEL_TRACES_EXPORTER=console): the real process wires the
replay-safe tracer provider and the OpenTelemetry plugin, and a run a plain client starts
is one trace — also when the worker holding it paused is stopped (SIGTERM) and another
worker process finishes it: one RunWorkflow span, the same trace in both processes' output.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from clients.runs import start_run
from tests.helpers import RunHandle, echo_steps, new_tenant
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.reconcile_support import wait_until
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
USER = {"id": "user-1", "authority": "TENANT_USER"}
UP = re.compile(r"worker on task queue")


def worker(processes: ProcessOutput, db_engine: Engine, dev_env: Any,
           task_queue: str) -> subprocess.Popen:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({
        "DATABASE_URL": db_engine.url.render_as_string(hide_password=False),
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TASK_QUEUE": task_queue,
        "HTTP_ENABLED": "false",
        "RECONCILE_SCHEDULE_ENABLED": "false",
        "METRICS_ENABLED": "false",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "GRACEFUL_SHUTDOWN_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    proc = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)
    return proc


async def wait_paused(handle: Any) -> None:
    for _ in range(300):
        if (await handle.query(RunWorkflow.status_query)).pause is not None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("run never paused")


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def console_spans(output: str) -> list[dict[str, Any]]:
    """The spans ConsoleSpanExporter printed (indented JSON objects, each opening with a
    ``{`` line) among the log lines."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := output.find("\n{\n", at)) != -1:
        span, at = decoder.raw_decode(output, start + 1)
        if isinstance(span, dict) and "context" in span:
            found.append(span)
    return found


def of_run(spans: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["attributes"].get("run_id") == run_id]


def assert_one_trace(mine: list[dict[str, Any]], tenant: str) -> Counter:
    assert mine
    assert len({s["context"]["trace_id"] for s in mine}) == 1
    ids = {s["context"]["span_id"] for s in mine}
    assert [s["name"] for s in mine if s["parent_id"] is None] == ["RunWorkflow:RunWorkflow"]
    assert [s["name"] for s in mine if s["parent_id"] and s["parent_id"] not in ids] == []
    assert {s["attributes"].get("tenant_id") for s in mine} == {tenant}
    return Counter(s["name"] for s in mine)


async def test_the_worker_process_traces_a_run_as_one_trace_across_a_restart(
    dev_env, db_engine, sessions, task_queue, processes
):
    tenant = new_tenant(sessions)
    payload = {"tenant_id": tenant, "steps": echo_steps(2)}
    first = worker(processes, db_engine, dev_env, task_queue)
    second = None
    try:
        await wait_until(lambda: UP.search(processes.output(first)), timeout=60,
                         what="the first worker up")  # fmt: skip
        straight = await start_run(dev_env.client, task_queue, payload)
        assert (await RunHandle(straight).result()).status == "succeeded"
        paused = await start_run(dev_env.client, task_queue, payload,
                                 start_signal=("pause", {"actor": USER}))  # fmt: skip
        await wait_paused(paused)
        assert stop(first) == 0, processes.output(first)
        second = worker(processes, db_engine, dev_env, task_queue)
        await wait_until(lambda: UP.search(processes.output(second)), timeout=60,
                         what="the second worker up")  # fmt: skip
        await paused.signal("resume", {"actor": USER})
        assert (await RunHandle(paused).result()).status == "succeeded"
        assert stop(second) == 0, processes.output(second)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    before, after = console_spans(processes.output(first)), console_spans(processes.output(second))

    names = assert_one_trace(of_run(before, straight.id.removeprefix("run-")), tenant)
    assert names["RunWorkflow:RunWorkflow"] == 1 and names["RunActivity:steps.execute"] == 2
    run_id = paused.id.removeprefix("run-")
    names = assert_one_trace(of_run(before, run_id) + of_run(after, run_id), tenant)
    assert names["RunWorkflow:RunWorkflow"] == 1, "once, by the worker that ended the run"
    assert [s["name"] for s in of_run(before, run_id) if s["name"].startswith("RunWorkflow")] == []
    assert names["RunActivity:steps.execute"] == 2 and names["HandleSignal:resume"] == 1
    assert of_run(before, run_id), "the first worker's activities are in the same trace"
    assert "Failed to detach context" not in processes.output(first)
