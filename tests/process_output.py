"""The output of the processes a test starts, shown when the test fails.

    def test_worker(processes, tmp_path):
        worker = processes.popen("worker.py", [sys.executable, "worker.py"], cwd=ROOT, env=env)
        processes.watch("embedded Temporal server", tmp_path / "temporal-server.log")
        done = processes.run("starter.py status", [sys.executable, "starter.py", "status", "r1"])

A Popen's stdout and stderr go to a log file (a pipe nobody reads fills up and blocks
the process); a run's are captured (``capture_output=True, text=True`` unless given).
When the test fails — in setup, call or teardown: an assertion, an exception, a readiness
wait that times out, pytest-timeout — the end of every tracked output (exit status, log
file, captured stdout/stderr, watched files) is added to the failure report as a
"Captured process output" section. For a fixture of wider scope (module), use
``ProcessOutput.attach(request.node, directory)``: every failing test under that node
shows it.

Test modules import the fixture under its function name (it is registered as
``processes``): ``from tests.process_output import processes_fixture  # noqa: F401``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

TAIL_BYTES = 12_000
_TRACKERS = pytest.StashKey[list["ProcessOutput"]]()
_REPORTED = pytest.StashKey[bool]()
_PLUGIN = "tests.process_output"


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The end of a file, decoded leniently (for a failure report)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"(no output: {exc})"
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    skipped = len(data) - limit
    text = data[-limit:].decode("utf-8", "replace")
    return f"[... first {skipped} bytes left out; the whole file: {path}]\n{text}"


def _tail_text(text: str | bytes | None, limit: int = TAIL_BYTES) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) <= limit:
        return text
    return f"[... first {len(text) - limit} characters left out]\n{text[-limit:]}"


class ProcessOutput:
    """The processes (and log files) of one test, or of all the tests under one node."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sources: list[tuple[str, Callable[[], str]]] = []
        self._logs: dict[int, Path] = {}
        self._names: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, node: pytest.Item | pytest.Collector, directory: Path) -> ProcessOutput:
        """A tracker whose output is reported when a test under ``node`` fails."""
        manager = node.config.pluginmanager
        if not manager.has_plugin(_PLUGIN):
            manager.register(_Reporter(), _PLUGIN)
        directory.mkdir(parents=True, exist_ok=True)
        tracker = cls(directory)
        node.stash.setdefault(_TRACKERS, []).append(tracker)
        return tracker

    def _label(self, name: str) -> str:
        with self._lock:
            self._names[name] += 1
            n = self._names[name]
        return name if n == 1 else f"{name} #{n}"

    def _add(self, label: str, read: Callable[[], str]) -> None:
        with self._lock:
            self._sources.append((label, read))

    def popen(self, name: str, args: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen`` with stdout and stderr into a log file of this tracker."""
        label = self._label(name)
        log = self.directory / (re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") + ".log")
        with log.open("ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self._logs[id(process)] = log

        def read() -> str:
            code = process.poll()
            status = "still running" if code is None else f"exited with {code}"
            return f"$ {shlex.join(map(str, args))}\n[{status}]\n{tail(log)}"

        self._add(f"{label} (pid {process.pid}, output in {log})", read)
        return process

    def log_path(self, process: subprocess.Popen) -> Path:
        return self._logs[id(process)]

    def output(self, process: subprocess.Popen) -> str:
        """Everything a process started by ``popen`` has printed so far."""
        return self.log_path(process).read_bytes().decode("utf-8", "replace")

    def run(self, name: str, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run`` (output captured), its result kept for the report."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        state: dict[str, Any] = {"status": "still running"}

        def read() -> str:
            return (
                f"$ {shlex.join(map(str, args))}\n[{state['status']}]\n"
                f"--- stdout ---\n{_tail_text(state.get('stdout'))}\n"
                f"--- stderr ---\n{_tail_text(state.get('stderr'))}"
            )

        self._add(self._label(name), read)
        try:
            done = subprocess.run(args, **kwargs)
        except subprocess.TimeoutExpired as exc:
            state.update(status=f"killed: timed out after {exc.timeout}s", stdout=exc.stdout,
                         stderr=exc.stderr)  # fmt: skip
            raise
        except BaseException as exc:
            state["status"] = f"not run to its end: {exc!r}"
            raise
        state.update(status=f"exited with {done.returncode}", stdout=done.stdout,
                     stderr=done.stderr)  # fmt: skip
        return done

    def watch(self, name: str, path: Path) -> None:
        """A log file some process writes (e.g. the embedded server's temporal-server.log)."""
        self._add(f"{self._label(name)} ({path})", lambda: tail(path))

    def report(self) -> str:
        with self._lock:
            sources = list(self._sources)
        parts = []
        for label, read in sources:
            try:
                body = read()
            except Exception as exc:  # a report must not hide the test's own failure
                body = f"(could not read: {exc!r})"
            parts.append(f"==== {label} ====\n{body.rstrip()}\n")
        return "\n".join(parts)


class _Reporter:
    """Adds the tracked output to the report of a failed setup, call or teardown."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
        report = yield
        if report.failed and not item.stash.get(_REPORTED, False):
            trackers = [t for node in item.listchain() for t in node.stash.get(_TRACKERS, [])]
            text = "\n".join(t.report() for t in trackers if t._sources)
            if text:
                item.stash[_REPORTED] = True
                report.sections.append((f"Captured process output {report.when}", text))
        return report


@pytest.fixture(name="processes")
def processes_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> ProcessOutput:
    """The processes this test starts; their output is in the report if it fails."""
    return ProcessOutput.attach(request.node, tmp_path / "process-output")
