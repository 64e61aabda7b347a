"""`python worker.py` with a plugin on its path that fails to import: the worker names it
in its log, starts without it, and runs the example plugin's skill in a run started with
`starter.py` (whose process discovers the same catalog)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.plugin_support import write_distribution
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.system.test_embedded_stack import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def environment(tmp_path: Path) -> dict[str, str]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_plugin.py").write_text("raise ImportError('needs libfoo')\n")
    write_distribution(plugins, "broken-plugin", {"exploding": "broken_plugin:SKILL"})
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(tmp_path), TEMPORAL_PORT=str(free_port()),
               TEMPORAL_UI_PORT=str(free_port()), TEMPORAL_HTTP_PORT=str(free_port()),
               TEMPORAL_METRICS_PORT=str(free_port()), HTTP_ENABLED="false",
               PYTHONPATH=os.pathsep.join([str(plugins), str(ROOT)]))  # fmt: skip
    return env


def test_a_worker_starts_without_the_plugin_that_fails_and_names_it(processes: ProcessOutput,
                                                                    tmp_path):  # fmt: skip
    env = environment(tmp_path)
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    worker = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)
    try:
        wait_ready(processes, worker)
        log = processes.output(worker)
        assert (
            "ERROR domain.skill_discovery skill entry point 'exploding = broken_plugin:SKILL' "
            "of broken-plugin not loaded: failed to import: ImportError: needs libfoo"
        ) in log

        def starter(*argv: str) -> subprocess.CompletedProcess:
            command = [sys.executable, "starter.py", *argv]
            return processes.run(f"starter.py {' '.join(argv)}", command, cwd=ROOT, env=env)

        assert starter("tenant", "add", "plugged").returncode == 0
        step = 'word_count:{"text": "one two two"}'
        done = starter("start", "--tenant", "plugged", "--step", step, "--wait", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert (result["phase"], result["status"], result["cost"]) == (
            "COMPLETED", "succeeded", "0.00002")  # fmt: skip
        refused = starter("start", "--tenant", "plugged", "--step", "exploding:{}")
        assert refused.returncode == 1
        assert "unknown skill 'exploding'" in refused.stderr
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
