"""The API as operators start it: beside the worker (`python worker.py`), or alone
(`python -m api`); and the inspect and apikey commands of starter.py against it."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.server import api_beside_worker
from tests.helpers import echo_steps
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TEMPORAL_", "HTTP_"))}
    env.pop("DATABASE_URL", None)
    return env | extra


def wait_healthy(base_url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    """Until /healthz answers 200; the process's output is in the report if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base_url} never became healthy")


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def starter(
    processes: ProcessOutput, env: dict[str, str], *argv: str
) -> subprocess.CompletedProcess:
    return processes.run(
        f"starter.py {' '.join(argv[:2])}", [sys.executable, "starter.py", *argv], cwd=ROOT,
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_worker_serves_the_api_and_the_cli_inspects_runs(processes, tmp_path):
    http_port = free_port()
    env = clean_env(
        DATA_DIR=str(tmp_path),
        TEMPORAL_PORT=str(free_port()),
        TEMPORAL_UI_PORT=str(free_port()),
        TEMPORAL_HTTP_PORT=str(free_port()),
        TEMPORAL_METRICS_PORT=str(free_port()),
        HTTP_PORT=str(http_port),
    )
    base_url = f"http://127.0.0.1:{http_port}"
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    worker = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)
    try:
        wait_healthy(base_url, worker)
        assert starter(processes, env, "tenant", "add", "acme").returncode == 0
        created = starter(
            processes, env, "apikey", "create", "acme", "--authority", "TENANT_ADMIN", "--json"
        )
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["key"]
        listed = starter(processes, env, "apikey", "list").stdout
        assert listed.count("tenant=acme TENANT_ADMIN") == 1 and key not in listed
        headers = {"X-API-Key": key}
        body = {"run_id": "cli-run", "steps": echo_steps(2)}
        assert httpx.post(f"{base_url}/runs", json=body, headers=headers).status_code == 202
        for _ in range(300):
            view = httpx.get(f"{base_url}/runs/cli-run", headers=headers).json()
            if view["workflow_status"] == "COMPLETED":
                break
            time.sleep(0.1)
        assert view["status"] == "succeeded"

        proof = starter(processes, env, "proof", "cli-run", "--json")
        assert proof.returncode == 0, proof.stderr
        assert json.loads(proof.stdout)["status"] == "VERIFIED"
        proof_text = starter(processes, env, "proof", "cli-run").stdout
        assert "VERIFIED (method HASH_CHAIN, 2 steps" in proof_text
        evidence = starter(processes, env, "evidence", "cli-run").stdout
        assert "incidents caused: 0" in evidence and "AUTHORIZATION -> ALLOWED" in evidence
        governance = json.loads(starter(processes, env, "governance", "cli-run", "--json").stdout)
        assert governance["events"][0]["event_type"] == "RUN_CREATED"
        unknown = starter(processes, env, "evidence", "no-such-run")
        assert unknown.returncode == 1
        assert unknown.stderr.strip() == "error: unknown run 'no-such-run'"
    finally:
        code = stop(worker)
    assert code == 0, processes.output(worker)


async def test_python_m_api_serves_alone(
    dev_env, settings, task_queue, tenant_keys, processes, tmp_path
):
    keys = tenant_keys()
    http_port = free_port()
    env = clean_env(
        DATA_DIR=str(tmp_path),
        DATABASE_URL=settings.resolved_database_url(),
        TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        TASK_QUEUE=task_queue,  # no worker polls it: the run is only started
        HTTP_PORT=str(http_port),
        OTEL_TRACES_EXPORTER="console",
    )
    api = processes.popen("python -m api", [sys.executable, "-m", "api"], cwd=ROOT, env=env)
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}", api)
        alerts = httpx.get(f"http://127.0.0.1:{http_port}/alerts", headers=keys.admin)
        assert alerts.status_code == 200 and alerts.json() == []
        busy = processes.run(
            "python -m api (its port taken)", [sys.executable, "-m", "api"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert busy.returncode == 2
        assert f"HTTP_HOST:HTTP_PORT 127.0.0.1:{http_port} cannot be bound" in busy.stderr
    finally:
        assert stop(api) == 0, processes.output(api)


async def test_a_busy_port_leaves_the_worker_without_the_api(dev_env, settings, sessions):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = settings.model_copy(update={"http_port": taken.getsockname()[1]})
        async with api_beside_worker(busy, sessions, dev_env.client) as server:
            assert server is None
    off = settings.model_copy(update={"http_enabled": False})
    async with api_beside_worker(off, sessions, dev_env.client) as server:
        assert server is None
    free = settings.model_copy(update={"http_port": 0})
    async with api_beside_worker(free, sessions, dev_env.client) as server:
        assert server is not None and server.started
