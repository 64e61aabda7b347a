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


def start_worker(tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), TEMPORAL_PORT=str(free_port()),
               TEMPORAL_UI_PORT=str(free_port()), HTTP_ENABLED="false")  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(worker: subprocess.Popen) -> str:
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = worker.stdout.readline()
        lines.append(line)
        if "worker on task queue governed-runs" in line:
            return "".join(lines)
        if worker.poll() is not None:
            break
    raise AssertionError("worker did not come up:\n" + "".join(lines))


def test_sigterm_stops_worker_and_server(tmp_path):
    worker = start_worker(tmp_path)
    try:
        wait_ready(worker)
        assert len(server_pids(tmp_path)) == 1
        assert (tmp_path / "temporal.db").exists() and (tmp_path / "governed_runs.db").exists()
        worker.send_signal(signal.SIGTERM)
        rest, _ = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert worker.returncode == 0, rest
    assert "Segmentation fault" not in rest and "panicked" not in rest
    assert server_pids(tmp_path) == []


def test_killed_worker_takes_its_server_along(tmp_path):
    worker = start_worker(tmp_path)
    try:
        wait_ready(worker)
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
