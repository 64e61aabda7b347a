"""The embedded default: `python worker.py` brings up its own Temporal dev server, and
leaves no server process behind — on SIGTERM (graceful) or when the worker is SIGKILLed."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_pids(data_dir: Path) -> list[int]:
    """Temporal dev-server processes whose command line names this data dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "start-dev" in cmdline and str(data_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


def start_worker(processes: ProcessOutput, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), TEMPORAL_PORT=str(free_port()),
               TEMPORAL_UI_PORT=str(free_port()), TEMPORAL_HTTP_PORT=str(free_port()),
               TEMPORAL_METRICS_PORT=str(free_port()), HTTP_ENABLED="false")  # fmt: skip
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    return processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)


def wait_ready(processes: ProcessOutput, worker: subprocess.Popen) -> int:
    """Until the worker logged that it polls its task queue: where its output after that
    line starts (in ``processes.output(worker)``)."""
    marker = "worker on task queue governed-runs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exited = worker.poll() is not None
        output = processes.output(worker)
        if marker in output:
            end = output.find("\n", output.index(marker))
            return len(output) if end < 0 else end + 1
        if exited:
            break
        time.sleep(0.05)
    raise AssertionError("worker did not come up:\n" + processes.output(worker))


def test_sigterm_stops_worker_and_server(processes, tmp_path):
    worker = start_worker(processes, tmp_path)
    try:
        ready_at = wait_ready(processes, worker)
        assert len(server_pids(tmp_path)) == 1
        assert (tmp_path / "temporal.db").exists() and (tmp_path / "governed_runs.db").exists()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        rest = processes.output(worker)[ready_at:]
    finally:
        worker.kill()
    assert worker.returncode == 0, rest
    assert "Segmentation fault" not in rest and "panicked" not in rest
    assert server_pids(tmp_path) == []


def test_killed_worker_takes_its_server_along(processes, tmp_path):
    worker = start_worker(processes, tmp_path)
    try:
        wait_ready(processes, worker)
        assert len(server_pids(tmp_path)) == 1
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        for _ in range(100):
            if not server_pids(tmp_path):
                break
            time.sleep(0.1)
    finally:
        worker.kill()
    assert server_pids(tmp_path) == []
