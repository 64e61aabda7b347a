"""The README's copy-and-paste blocks, run as a newcomer pastes them, against a fresh stack.

A block is run when the README marks it: ``<!-- readme-test: N name -->`` before an indented
block; the blocks run in the order of N, each line one command (in bash, from the
checkout), and each must exit 0. Only what differs on a test machine is substituted: the
interpreter and the Temporal CLI of this venv, and the free ports (TEMPORAL_ADDRESS, which
both starter.py and the Temporal CLI read). Then the refusals the README promises: their
exit codes and one line on stderr.
"""

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.test_api_server import clean_env, free_port, stop, wait_healthy
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"^<!-- readme-test: (\d+) ([\w-]+) -->$")


def readme_blocks(text: str) -> list[tuple[str, list[str]]]:
    """The marked blocks, in their order: (name, commands)."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if mark is None:
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        commands: list[str] = []
        while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
            if lines[j].strip():
                commands.append(lines[j][4:])
            j += 1
        assert commands, f"readme-test {mark.group(2)}: no indented block after the mark"
        found.append((int(mark.group(1)), mark.group(2), commands))
    return [(name, commands) for _, name, commands in sorted(found)]


def local(command: str) -> str:
    venv_bin = Path(sys.executable).parent
    command = command.replace(".venv/bin/python ", f"{sys.executable} ")
    return command.replace(".venv/bin/temporal ", f"{venv_bin / 'temporal'} ")


def sh(processes: ProcessOutput, env: dict[str, str], command: str) -> subprocess.CompletedProcess:
    return processes.run(
        command, ["bash", "-c", local(command)], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=90,
    )  # fmt: skip


def test_the_readme_blocks_run_as_pasted(processes, tmp_path):
    blocks = readme_blocks((ROOT / "README.md").read_text())
    names = [name for name, _ in blocks]
    assert names == ["first-run", "temporal-cli"], names
    temporal_port, http_port = free_port(), free_port()
    worker_env = clean_env(
        DATA_DIR=str(tmp_path),
        TEMPORAL_PORT=str(temporal_port),
        TEMPORAL_UI_PORT=str(free_port()),
        TEMPORAL_HTTP_PORT=str(free_port()),
        TEMPORAL_METRICS_PORT=str(free_port()),
        HTTP_PORT=str(http_port),
    )
    env = worker_env | {"TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}"}
    processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
    worker = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=worker_env)
    try:
        wait_healthy(f"http://127.0.0.1:{http_port}", worker)
        outputs = {}
        for name, commands in blocks:
            for command in commands:
                done = sh(processes, env, command)
                assert done.returncode == 0, f"{name}: {command}\n{done.stdout}\n{done.stderr}"
                outputs[command] = done.stdout
        text = "\n".join(outputs.values())
        assert "run first-run: COMPLETED succeeded" in text
        assert "run first-run: VERIFIED (method HASH_CHAIN" in text
        assert "rule cost-cap: enabled v2" in text

        refusals_on_the_same_stack(processes, env, tmp_path)
    finally:
        code = stop(worker)
    assert code == 0, processes.output(worker)


def refused(done: subprocess.CompletedProcess, line: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.strip() == line, done.stderr
    assert "Traceback" not in done.stderr


def refusals_on_the_same_stack(processes: ProcessOutput, env: dict[str, str], data: Path) -> None:
    cli = ".venv/bin/python starter.py"
    # An unknown tenant: refused before anything starts, with how to create it.
    refused(
        sh(processes, env, f"{cli} start --tenant nobody --run-id nobody-run --step echo --wait"),
        "error: unknown tenant 'nobody' (create it: starter.py tenant add nobody)",
    )
    refused(
        sh(processes, env, f"{cli} apikey create nobody --authority TENANT_ADMIN"),
        "error: unknown tenant 'nobody' (create it: starter.py tenant add nobody)",
    )
    assert "unknown run 'nobody-run'" in sh(processes, env, f"{cli} status nobody-run").stderr

    # A run that ends FAILED (denied: budget over the tenant's limit): exit 1, JSON printed.
    echo = """echo:'{"text":"x"}'"""
    denied = sh(processes, env, f"{cli} start --tenant acme --run-id denied --step {echo} "
                "--budget 50 --wait --json")  # fmt: skip
    assert denied.returncode == 1, denied.stderr
    assert json.loads(denied.stdout)["phase"] == "FAILED"
    assert denied.stderr.startswith("error: run denied ended FAILED failed_policy: ")

    # A stop request for a run that has ended.
    refused(
        sh(processes, env, f"{cli} request-stop first-run"),
        "error: run first-run has ended (COMPLETED); cannot request a stop",
    )

    # A resume the pause does not allow: the run's update refuses it at once (audited; no
    # event in the run's history), exit 1.
    temporal = ".venv/bin/temporal workflow"
    pause = '{"reason":"POLICY_CHANGE","actor":{"id":"ops-1","authority":"TENANT_ADMIN"}}'
    run = '{"run_id":"held","tenant_id":"acme","steps":[{"skill":"echo","input":{"text":"x"}}]}'
    started = sh(processes, env, f"{temporal} signal-with-start --task-queue governed-runs "
                 f"--type RunWorkflow --workflow-id run-held --input '{run}' "
                 f"--signal-name pause --signal-input '{pause}'")  # fmt: skip
    assert started.returncode == 0, started.stderr
    for _ in range(100):
        if '"status": "paused"' in sh(processes, env, f"{cli} status held --json").stdout:
            break
    refusal = sh(processes, env, f"{cli} resume held --authority TENANT_USER")
    refused(refusal, "error: run held refuses the resume: TENANT_USER may not resume a "
            "POLICY_CHANGE pause (allowed: TENANT_ADMIN, FOUNDER_ONLY)")  # fmt: skip
    assert refusal.stdout.strip() == ""
    audited = sh(processes, env, f"{cli} evidence held --json")
    assert [c["kind"] for c in json.loads(audited.stdout)["decisions"]["control"]] == [
        "RESUME_REFUSED"]  # fmt: skip
    resumed = sh(processes, env, f"{cli} resume held --authority TENANT_ADMIN")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("resume accepted by run held: EXECUTING running")

    # `--json | head`: no BrokenPipe traceback.
    piped = sh(processes, env, f"{cli} governance first-run --json | head -c 1")
    assert piped.stdout == "{" and "Traceback" not in piped.stderr, piped.stderr

    # A FAILED proof exits 1; --json still prints it.
    with sqlite3.connect(data / "governed_runs.db") as db:
        db.execute("UPDATE trace_steps SET skill = 'tampered' WHERE run_id = 'first-run'")
    proof = sh(processes, env, f"{cli} proof first-run --json")
    assert proof.returncode == 1 and json.loads(proof.stdout)["status"] == "FAILED"
    assert proof.stderr.startswith("error: run first-run: proof FAILED at step ")

    # Read commands never create a database.
    empty = data / "elsewhere"
    elsewhere = env | {"DATA_DIR": str(empty)}
    refused(
        sh(processes, elsewhere, f"{cli} evidence first-run"),
        f"error: no database at {(empty / 'governed_runs.db').resolve()}: start the worker "
        "first (make run), or set DATABASE_URL / DATA_DIR",
    )
    assert not (empty / "governed_runs.db").exists()
