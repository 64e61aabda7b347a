"""`starter.py bench` on tiny numbers prints every figure, each present and positive.

Only presence and sign are checked: performance targets live in the benchmark's own
output (met / not met), never in a timed test.
"""

import json
import sys
from pathlib import Path

import pytest

from tests.process_output import ProcessOutput
from tools.bench.report import text_report

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(150)

TINY = ["--runs", "6", "--steps", "3", "--concurrency", "3", "--unloaded-runs", "3",
        "--stale-rows", "5000", "--paused-runs", "10", "--flood-runs", "6"]  # fmt: skip


def positive(value: float) -> bool:
    return isinstance(value, int | float) and value > 0


@pytest.fixture(scope="module")
def bench(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    directory = tmp_path_factory.mktemp("bench")
    plot = directory / "bench.png"
    # Its stdout and stderr are in the report of any test of this module that fails.
    processes = ProcessOutput.attach(request.node, directory)
    done = processes.run(
        "starter.py bench",
        [sys.executable, "starter.py", "bench", *TINY, "--json", "--plot", str(plot)],
        cwd=ROOT, capture_output=True, text=True, timeout=140, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), plot


def test_governed_and_bare_figures_are_all_there(bench):
    results, _ = bench
    for phase, concurrency in (("loaded", 3), ("unloaded", 1)):
        for kind in ("governed", "bare"):
            figures = results[phase][kind]
            assert figures["runs"] == (6 if phase == "loaded" else 3)
            assert figures["failed"] == 0 and figures["concurrency"] == concurrency
            assert positive(figures["runs_per_second"])
            for key in ("end_to_end_ms", "start_ms"):
                assert figures[key]["n"] == figures["runs"]
                assert all(positive(figures[key][p]) for p in ("p50", "p99", "mean", "max"))
            cpu = figures["cpu_ms_per_run"]
            assert positive(cpu["client_and_worker"]) and positive(cpu["server"])
            assert cpu["total"] == pytest.approx(cpu["client_and_worker"] + cpu["server"], abs=0.2)
    assert all(positive(v) for v in results["ratios"].values())
    assert {"cpu_ratio", "throughput_ratio_ceiling"} <= results["ratios"].keys()
    activity_cpu = results["activity_cpu_ms_per_run"]
    assert positive(activity_cpu["governed"]) and activity_cpu["governed"] > activity_cpu["bare"]
    governed, bare = results["history_per_run"]["governed"], results["history_per_run"]["bare"]
    assert governed["activities"] == bare["activities"] == 3  # one per step
    assert positive(governed["local_activities"]) and bare["local_activities"] == 0
    assert positive(governed["workflow_tasks"]) and positive(bare["workflow_tasks"])
    per_run = results["activity_ms_per_run"]["unloaded"]
    assert per_run["steps.execute"]["count"] == 3 and positive(per_run["steps.execute"]["ms"])
    assert positive(results["activity_ms_per_run"]["loaded"]["steps.execute"]["cpu_ms"])
    assert any(name.startswith("L:") for name in per_run)


def test_stale_scan_and_paused_runs_figures_are_all_there(bench):
    results, _ = bench
    scan = results["stale_scan"]
    assert scan["rows"] == 5000 and scan["overdue_rows"] == 50  # 1 % overdue by design
    assert scan["uses_partial_index"] is True
    for key in ("first_page_warm_ms", "first_page_cold_ms", "all_overdue_warm_ms",
                "all_overdue_cold_ms", "load_seconds"):  # fmt: skip
        assert positive(scan[key]), key
    paused = results["paused"]
    assert paused["runs"] == 10
    for key in ("worker_rss_idle_mb", "worker_rss_all_paused_mb", "worker_rss_peak_mb",
                "pause_all_seconds", "resume_all_seconds", "resumed_runs_per_second"):  # fmt: skip
        assert positive(paused[key]), key
    assert set(paused["rss_timeline"]["marks"]) == {"started", "all paused", "resume sent",
                                                    "all completed"}  # fmt: skip


def test_fairness_figures_are_all_there(bench):
    results, _ = bench
    fair = results["fairness"]
    assert fair["flood_runs"] == 6 and fair["steps_in_flight_limit"] == 16
    for part in ("alone", "unbounded", "at_limit"):
        assert fair[f"quiet_{part}_runs"] >= 5
        assert positive(fair[f"quiet_{part}_p50_ms"]) and positive(fair[f"quiet_{part}_max_ms"])
    for key in (
        "quiet_unbounded_flood_seconds",
        "quiet_at_limit_flood_seconds",
        "quiet_max_ratio_unbounded_over_alone",
        "quiet_max_ratio_at_limit_over_alone",
    ):
        assert positive(fair[key]), key
    assert "fairness: a quiet tenant's one-step run" in text_report(results)


def test_every_target_is_printed_with_its_measured_value_and_the_plot_is_a_png(bench):
    results, plot = bench
    names = [t["name"] for t in results["targets"]]
    assert len(names) == 6
    assert all(positive(t["measured"]) and t["met"] in (True, False) for t in results["targets"])
    text = text_report(results)
    for name in names:
        assert name in text
    assert "NOT met" in text or "| met |" in text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
