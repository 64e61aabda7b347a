"""A bad DATABASE_URL or an unreachable TEMPORAL_ADDRESS is one line naming the setting."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.process_output import processes_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


def run(processes, args, tmp_path, **env) -> subprocess.CompletedProcess:
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    full_env.update({"DATA_DIR": str(tmp_path), **env})
    return processes.run(
        " ".join(args), [sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
        text=True, timeout=50,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "DATABASE_URL is not a valid SQLAlchemy URL"),
        ("mysql://x@127.0.0.1/db", "DATABASE_URL uses 'mysql'"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "DATABASE_URL postgresql+psycopg://"),
    ],
)
def test_bad_database_url(processes, tmp_path, url, expected):
    result = run(processes, ["worker.py"], tmp_path, DATABASE_URL=url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_unreachable_temporal_address(processes, tmp_path):
    result = run(processes, ["worker.py"], tmp_path, TEMPORAL_ADDRESS="127.0.0.1:1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: TEMPORAL_ADDRESS 127.0.0.1:1 is unreachable"), last


def test_starter_unreachable_temporal(processes, tmp_path):
    result = run(
        processes, ["starter.py", "status", "r1"], tmp_path, TEMPORAL_ADDRESS="127.0.0.1:1"
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: TEMPORAL_ADDRESS 127.0.0.1:1 is unreachable")


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "TEMPORAL_ADDRESS and DATABASE_URL"),
        ({"DATABASE_URL": "sqlite:///x.db"}, "TEMPORAL_ADDRESS"),
        ({"TEMPORAL_ADDRESS": "127.0.0.1:1"}, "DATABASE_URL"),
    ],
)
def test_production_needs_an_address_and_a_database(processes, tmp_path, env, missing):
    result = run(processes, ["worker.py"], tmp_path, ENVIRONMENT="production", **env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: ENVIRONMENT=production needs {missing} (the embedded dev server "
                    "and the SQLite default are for development)"), last  # fmt: skip
    assert not (tmp_path / "governed_runs.db").exists() and not (tmp_path / "temporal.db").exists()


def test_a_busy_metrics_port_is_one_line_naming_it(processes, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(processes, ["worker.py"], tmp_path, METRICS_PORT=str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: METRICS_PORT {port} cannot be bound on 127.0.0.1: Address already in use "
        "(set another METRICS_PORT, or METRICS_ENABLED=false)"
    ), result.stderr
    # bound before anything else: no database, no embedded Temporal server
    assert not (tmp_path / "governed_runs.db").exists() and not (tmp_path / "temporal.db").exists()


def test_metrics_disabled_binds_no_port(processes, tmp_path):
    """METRICS_ENABLED=false: the busy METRICS_PORT is never tried; the worker gets as far
    as the database it cannot use."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(processes, ["worker.py"], tmp_path, METRICS_ENABLED="false",
                     METRICS_PORT=str(port), DATABASE_URL="mysql://x@127.0.0.1/db")  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_URL uses 'mysql'" in lines[0], result.stderr
