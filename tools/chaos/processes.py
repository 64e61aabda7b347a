"""Worker subprocesses (the real ``python worker.py``), free ports and RSS from /proc."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, from /proc/<pid>/status (VmRSS, VmHWM)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class WorkerProcess:
    """``python worker.py`` against an existing server (TEMPORAL_ADDRESS): no server of its
    own, no HTTP API; SIGKILLed and started again by chaos, measured by the benchmarks."""

    def __init__(
        self,
        address: str,
        database_url: str,
        task_queue: str,
        data_dir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "TEMPORAL_ADDRESS": address,
            "DATABASE_URL": database_url,
            "TASK_QUEUE": task_queue,
            "DATA_DIR": str(data_dir),
            "HTTP_ENABLED": "false",
            "METRICS_PORT": "0",  # several workers on one host: each /metrics on a free port
            "RECONCILE_SCHEDULE_ENABLED": "false",
            "EVENT_REACTOR_ENABLED": "false",
            **(extra_env or {}),
        }
        self.log_path = data_dir / f"worker-{task_queue}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "worker.py"],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the worker logged that it polls its task queue (or exited)."""
        deadline = time.monotonic() + timeout
        marker = b"worker on task queue"
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}; its output "
                    f"({self.log_path}):\n{self.output_tail()}"
                )
            if self.log_path.read_bytes().count(marker) >= self.starts:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"worker not ready after {timeout}s; its output ({self.log_path}):\n"
            f"{self.output_tail()}"
        )

    def output_tail(self, limit: int = 8000) -> str:
        """The end of what the worker printed (for a failing test's message)."""
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError as exc:
            return f"(no output: {exc})"

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight tasks are abandoned."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (graceful), then SIGKILL if it does not exit in time."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss(self) -> tuple[int, int]:
        return rss_bytes(self.pid)
