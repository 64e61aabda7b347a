"""The infrastructure chaos breaks, and the three faults it injects.

- ``worker``: SIGKILL the worker process, start a new one at once;
- ``server``: SIGKILL the embedded Temporal server's process group, start it again on the
  same port over the same SQLite file;
- ``db``: restart the private PostgreSQL cluster in ``immediate`` mode (a crash: no
  checkpoint, WAL recovery at start);
- ``db_outage``: stop the private PostgreSQL cluster, keep it down for
  ``outage_seconds`` (a minute, ten: far beyond any retry budget of a single write), start
  it again.

Server and database are started from one long-lived infrastructure thread: the server
gets SIGTERM when the thread that started it ends (PDEATHSIG), so never a pool thread
that may go away.
"""

import asyncio
import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from runtime.embedded_temporal import EmbeddedTemporal
from tools.chaos.pgcluster import PrivatePostgres
from tools.chaos.processes import WorkerProcess, free_port

WORKER, SERVER, DB, DB_OUTAGE = "worker", "server", "db", "db_outage"


@dataclass
class Infra:
    data_dir: Path
    database_url: str
    task_queue: str
    pg: PrivatePostgres | None = None
    server: EmbeddedTemporal | None = None
    worker: WorkerProcess | None = None
    thread: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="chaos-infra")
    )
    unplanned_worker_exits: int = 0
    outage_seconds: float = 60.0  # how long a db_outage keeps PostgreSQL down

    async def on_infra_thread(self, fn, *args):  # noqa: ANN001, ANN002, ANN201
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    async def start_server(self) -> str:
        self.server = EmbeddedTemporal(self.data_dir, free_port(), free_port())
        return await self.on_infra_thread(self.server.start)

    async def start_worker(self) -> None:
        assert self.server is not None
        self.worker = WorkerProcess(
            self.server.address, self.database_url, self.task_queue, self.data_dir
        )
        self.worker.start()
        await asyncio.to_thread(self.worker.wait_ready)

    async def ensure_worker(self) -> None:
        """Start the worker again if it exited on its own (counted, and reported)."""
        if self.worker is not None and not self.worker.alive():
            self.unplanned_worker_exits += 1
            self.worker.start()

    async def inject(self, kind: str) -> float:
        """Inject one fault and repair it; returns the seconds until the component was back
        (a new worker polling, the server's port open, PostgreSQL accepting connections)."""
        began = time.monotonic()
        if kind == WORKER:
            assert self.worker is not None
            self.worker.kill()
            self.worker.start()
            await asyncio.to_thread(self.worker.wait_ready)
        elif kind == SERVER:
            await self.on_infra_thread(self._crash_restart_server)
        elif kind == DB:
            assert self.pg is not None
            await self.on_infra_thread(self.pg.restart, "immediate")
        elif kind == DB_OUTAGE:
            assert self.pg is not None
            await self.on_infra_thread(self.pg.stop)
            await asyncio.sleep(self.outage_seconds)
            await self.on_infra_thread(self.pg.start)
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return time.monotonic() - began

    def _crash_restart_server(self) -> None:
        server = self.server
        assert server is not None and server.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        server.start()

    async def close(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        if self.server is not None:
            await self.on_infra_thread(self.server.stop)
        if self.pg is not None:
            await self.on_infra_thread(self.pg.remove)
        self.thread.shutdown(wait=True)
