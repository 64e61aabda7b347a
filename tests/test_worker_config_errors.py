"""A worker setting that names nothing real ends ``python worker.py`` with one line, before
anything starts (no embedded server, no database)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process_output import processes_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


def run_worker(processes, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    full_env.update({"DATA_DIR": str(tmp_path), "HTTP_ENABLED": "false", **env})
    return processes.run("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=full_env,
                         capture_output=True, text=True, timeout=50)  # fmt: skip


def test_an_unknown_held_patch_stops_the_worker_before_it_starts(processes, tmp_path):
    data_dir = tmp_path / "data"
    result = run_worker(processes, data_dir, HELD_PATCHES='["durable-writes", "no-such-patch"]')
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: HELD_PATCHES names no patch: no-such-patch (patches: ")
    assert "durable-writes" in lines[0]  # the ids there are
    assert not data_dir.exists()  # no database, no embedded server's files
