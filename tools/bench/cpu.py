"""CPU time of the benchmark's two processes: this one (the client that starts and awaits
the runs, and the worker) and the embedded Temporal server.

When both kinds of run are CPU-bound on the same cores, their throughput ratio follows
their CPU per run; the activity functions' own CPU (tools.bench.probe) bounds what
governance could cost at the least, and so how close to the bare run it could get.
"""

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds of this process (client + worker) and of the server."""

    bench: float = 0.0
    server: float = 0.0

    def __add__(self, other: "CpuUse") -> "CpuUse":
        return CpuUse(self.bench + other.bench, self.server + other.server)

    def __sub__(self, other: "CpuUse") -> "CpuUse":
        return CpuUse(self.bench - other.bench, self.server - other.server)

    @property
    def total(self) -> float:
        return self.bench + self.server

    def per_run_ms(self, runs: int) -> dict[str, float]:
        def ms(seconds: float) -> float:
            return round(1000 * seconds / runs, 1) if runs else 0.0

        return {
            "client_and_worker": ms(self.bench),
            "server": ms(self.server),
            "total": ms(self.total),
        }


def cpu_now(server_pid: int) -> CpuUse:
    return CpuUse(time.process_time(), process_cpu_seconds(server_pid))
