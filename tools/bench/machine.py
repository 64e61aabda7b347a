"""A description of the machine a benchmark ran on, printed beside its figures."""

import os
import platform
import subprocess
from pathlib import Path

from runtime.embedded_temporal import temporal_binary


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def temporal_version() -> str:
    try:
        out = subprocess.run(
            [temporal_binary(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError, RuntimeError):
        return "unknown"
    return out.strip().removeprefix("temporal version ") or "unknown"


def describe(database: str) -> dict[str, str | int | float]:
    return {
        "cores": os.cpu_count() or 0,
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "temporal_cli": temporal_version(),
        "temporal_server": "embedded dev server (temporal server start-dev), SQLite file, WAL",
        "app_database": database,
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def describe_text(machine: dict) -> str:
    return (
        f"{machine['cores']} cores, {machine['memory_gib']} GiB, Python {machine['python']}, "
        f"Temporal CLI {machine['temporal_cli']} ({machine['temporal_server']}), "
        f"app database {machine['app_database']}; load average at start "
        f"{machine['load_average_at_start']}"
    )
