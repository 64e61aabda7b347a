"""The claim check as an operator meets it: ``python worker.py`` (embedded Temporal, SQLite)
and ``starter.py start --file`` with a run input over CLAIM_CHECK_THRESHOLD_BYTES. The CLI
stores the input's blob in the worker's database, the worker reads it and stores the large
step outputs; the run completes, ``status`` reads it, and what Temporal holds — read by a
client without any codec, as the Web UI would — is references and small payloads only."""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from temporalio.client import Client

from runtime.claim_check import ENCODING, parse_reference
from tests.claim_check_support import BIG, MARGIN, flow, payloads_in
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.system.test_embedded_stack import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


def cli(processes: ProcessOutput, env: dict, *args: str) -> subprocess.CompletedProcess:
    return processes.run(f"starter.py {' '.join(args[:2])}", [sys.executable, "starter.py", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=90)  # fmt: skip


def test_a_large_run_input_from_the_cli_runs_by_reference(processes, tmp_path):
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), TEMPORAL_PORT=port, TEMPORAL_UI_PORT=str(free_port()),
               TEMPORAL_HTTP_PORT=str(free_port()), TEMPORAL_METRICS_PORT=str(free_port()),
               HTTP_ENABLED="false")  # fmt: skip
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    worker = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)
    try:
        wait_ready(processes, worker)
        added = cli(processes, env, "tenant", "add", "acme")
        assert added.returncode == 0, added.stderr
        run_input = tmp_path / "big.json"
        run_input.write_text(
            json.dumps({"tenant_id": "acme", "run_id": "big1", "steps": flow(BIG)})
        )
        started = cli(processes, env, "start", "--file", str(run_input), "--wait", "--json")
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["phase"] == "COMPLETED", started.stdout
        status = cli(processes, env, "status", "big1", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["phase"] == "COMPLETED"
        history = asyncio.run(history_of(f"127.0.0.1:{port}", "run-big1"))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        finally:
            worker.kill()
    found = [p for e in history.events for p in payloads_in(e)]
    refs = {parse_reference(p) for p in found if p.metadata.get("encoding") == ENCODING}
    assert max(p.ByteSize() for p in found) <= 32 * 1024 + MARGIN
    assert len(refs) >= 3
    engine = create_engine(f"sqlite:///{tmp_path / 'governed_runs.db'}")
    with engine.connect() as connection:
        stored = dict(connection.execute(text("SELECT sha256, size FROM payload_blobs")).all())
    engine.dispose()
    assert {sha: size for sha, size in refs}.items() <= stored.items()


async def history_of(address: str, workflow_id: str):  # noqa: ANN201
    client = await Client.connect(address)  # no codec: what the Web UI and CLI see
    return await client.get_workflow_handle(workflow_id).fetch_history()


def test_a_worker_whose_blob_ttl_is_shorter_than_the_history_retention_refuses_to_start(
    processes, tmp_path
):
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), TEMPORAL_PORT=str(free_port()),
               TEMPORAL_UI_PORT=str(free_port()), TEMPORAL_HTTP_PORT=str(free_port()),
               TEMPORAL_METRICS_PORT=str(free_port()), HTTP_ENABLED="false",
               RETENTION_PAYLOAD_BLOBS_SECONDS="180000")  # fmt: skip
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    done = processes.run("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: RETENTION_PAYLOAD_BLOBS_SECONDS=180000 is shorter than claim-check blobs are "
        "referenced: namespace default keeps histories 86400 s"
    ), last
    assert "at least 180300" in last
