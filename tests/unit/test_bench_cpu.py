"""tools.bench.cpu reads a process's CPU time from /proc, in the clock time.process_time uses."""

import os
import time

from tools.bench.cpu import CpuUse, process_cpu_seconds


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_this_process_reads_as_its_process_time():
    before, proc_before = process_cpu_seconds(os.getpid()), time.process_time()
    busy(0.3)
    spent, proc_spent = process_cpu_seconds(os.getpid()) - before, time.process_time() - proc_before
    assert proc_spent >= 0.3
    assert abs(spent - proc_spent) < 0.05  # clock ticks are 10 ms


def test_cpu_use_per_run():
    use = CpuUse(bench=1.0, server=0.5) - CpuUse(bench=0.2, server=0.1) + CpuUse(0.2, 0.0)
    assert use.per_run_ms(10) == {"client_and_worker": 100.0, "server": 40.0, "total": 140.0}
    assert CpuUse().per_run_ms(0) == {"client_and_worker": 0.0, "server": 0.0, "total": 0.0}
