"""Latency and throughput statistics of a batch of runs."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tools.bench.cpu import CpuUse


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """Milliseconds: p50, p99, mean, max over ``n`` samples."""

    n: int
    p50: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Latency":
        ms = [s * 1000 for s in seconds]
        if not ms:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(ms), percentile(ms, 50), percentile(ms, 99), sum(ms) / len(ms), max(ms))

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RunSample:
    """One run: when it was requested, when its first step began, when its result arrived."""

    workflow_id: str
    requested: float
    first_step: float | None
    finished: float
    ok: bool

    @property
    def end_to_end(self) -> float:
        return self.finished - self.requested

    @property
    def start_latency(self) -> float | None:
        return None if self.first_step is None else self.first_step - self.requested


@dataclass(frozen=True)
class BatchFigures:
    """Figures of one batch (governed or bare) run with a given concurrency."""

    kind: str
    runs: int
    steps: int
    concurrency: int
    wall_seconds: float
    failed: int
    end_to_end: Latency
    start: Latency
    cpu: CpuUse | None = None  # of the bench process and the server during the batch

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.wall_seconds if self.wall_seconds > 0 else math.nan

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "runs": self.runs,
            "steps": self.steps,
            "concurrency": self.concurrency,
            "wall_seconds": round(self.wall_seconds, 3),
            "runs_per_second": round(self.runs_per_second, 2),
            "failed": self.failed,
            "end_to_end_ms": self.end_to_end.as_dict(),
            "start_ms": self.start.as_dict(),
            **({"cpu_ms_per_run": self.cpu.per_run_ms(self.runs)} if self.cpu else {}),
        }


def figures(
    kind: str,
    samples: Sequence[RunSample],
    steps: int,
    concurrency: int,
    wall: float,
    cpu: CpuUse | None = None,
) -> BatchFigures:
    starts = [s.start_latency for s in samples if s.start_latency is not None]
    return BatchFigures(
        kind=kind,
        runs=len(samples),
        steps=steps,
        concurrency=concurrency,
        wall_seconds=wall,
        failed=sum(not s.ok for s in samples),
        end_to_end=Latency.of([s.end_to_end for s in samples]),
        start=Latency.of(starts),
        cpu=cpu,
    )


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan
