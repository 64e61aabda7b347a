"""A worker interceptor that times every activity (local or not) of the bench worker.

It gives the start latency (a run's first step begins executing) and where a run's time
goes, per activity type: wall time, and the CPU time of the activity function itself
(its thread's CPU clock, around the call in the executor thread). The bench driver and
worker share one process, so the monotonic clock of a start request and of an activity
start are comparable.
"""

import dataclasses
import inspect
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

# The activity that is "a step" in each kind of run: its first start ends the start latency.
STEP_ACTIVITIES = frozenset({"steps.execute", "bench.noop"})


@dataclass(frozen=True)
class ActivityTiming:
    workflow_id: str
    activity_type: str
    local: bool
    started: float
    seconds: float
    cpu_seconds: float = 0.0  # of the (synchronous) activity function; 0 for async ones


class ActivityProbe(Interceptor):
    """Records (workflow id, activity type, local?, start, duration) of each attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.timings: list[ActivityTiming] = []
        self.first_step: dict[str, float] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Timed(next, self)

    def record(self, timing: ActivityTiming) -> None:
        with self._lock:
            self.timings.append(timing)

    def step_started(self, workflow_id: str, at: float) -> None:
        with self._lock:
            self.first_step.setdefault(workflow_id, at)

    def seconds_by_type(self, workflow_ids: set[str], cpu: bool = False) -> dict[str, float]:
        """Total seconds (wall, or the functions' CPU) per activity type ("L:" prefix for
        local ones) over these runs."""
        totals: dict[str, float] = defaultdict(float)
        with self._lock:
            for t in self.timings:
                if t.workflow_id in workflow_ids:
                    name = ("L:" if t.local else "") + t.activity_type
                    totals[name] += t.cpu_seconds if cpu else t.seconds
        return dict(totals)

    def counts_by_type(self, workflow_ids: set[str]) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        with self._lock:
            for t in self.timings:
                if t.workflow_id in workflow_ids:
                    counts[("L:" if t.local else "") + t.activity_type] += 1
        return dict(counts)


class _Timed(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, probe: ActivityProbe) -> None:
        super().__init__(next)
        self.probe = probe

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        started = time.monotonic()
        workflow_id = info.workflow_id or ""
        if info.activity_type in STEP_ACTIVITIES:
            self.probe.step_started(workflow_id, started)
        cpu = [0.0]
        if not inspect.iscoroutinefunction(input.fn):
            input = dataclasses.replace(input, fn=_cpu_measured(input.fn, cpu))
        try:
            return await self.next.execute_activity(input)
        finally:
            self.probe.record(
                ActivityTiming(
                    workflow_id=workflow_id,
                    activity_type=info.activity_type,
                    local=info.is_local,
                    started=started,
                    seconds=time.monotonic() - started,
                    cpu_seconds=cpu[0],
                )
            )


def _cpu_measured(fn: Callable, cpu: list[float]) -> Callable:
    """``fn``, storing the CPU time of its thread during the call in ``cpu[0]``."""

    def measured(*args: Any) -> Any:
        began = time.thread_time()
        try:
            return fn(*args)
        finally:
            cpu[0] = time.thread_time() - began

    return measured
