"""A private PostgreSQL cluster in a temporary directory, on a free port.

Chaos restarts its database and the stale-scan benchmark restarts it for a cold cache;
neither may disturb a shared server. ``initdb`` + ``pg_ctl`` from the installed
PostgreSQL (``/usr/lib/postgresql/<v>/bin`` or ``PATH``); as root they run as the
``postgres`` user (``runuser``), since PostgreSQL refuses to run as root.
"""

import contextlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.chaos.processes import free_port

log = logging.getLogger(__name__)


class PostgresUnavailableError(RuntimeError):
    """No PostgreSQL server binaries on this machine, or the cluster did not start."""


def postgres_bindir() -> Path:
    """The directory holding initdb and pg_ctl (the newest installed version)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailableError("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


class PrivatePostgres:
    """initdb a cluster, start it on 127.0.0.1:<free port>, restart it, remove it."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="governed-runs-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [*self._as_user, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PostgresUnavailableError(f"{args[0]} {args[1]} failed: {detail[0]}")

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            *extra,
        )

    def start(self) -> str:
        """initdb (first time) and start; returns the SQLAlchemy URL."""
        if not self.data.exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        self._ctl("start")
        log.info("private PostgreSQL on 127.0.0.1:%d (%s)", self.port, self.data)
        return self.url

    def restart(self, mode: str = "fast") -> float:
        """Restart the server (``immediate`` = crash and WAL recovery); returns seconds down."""
        began = time.monotonic()
        self._ctl("restart", "-m", mode)
        return time.monotonic() - began

    def stop(self) -> None:
        with contextlib.suppress(PostgresUnavailableError, subprocess.TimeoutExpired):
            self._ctl("stop", "-m", "fast")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PrivatePostgres":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
