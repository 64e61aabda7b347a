"""The chaos report: faults and recovery times, then the verification, as markdown tables."""

from collections import defaultdict

from tools.bench.report import table
from tools.bench.stats import percentile

TARGETS = {"worker": 50, "server": 5, "db": 5, "db_outage": 0}
TARGET_RUNS = 500


LABELS = {
    "worker": "worker SIGKILL + restart",
    "server": "Temporal server crash-restart",
    "db": "PostgreSQL crash-restart",
    "db_outage": "PostgreSQL down (outage)",
}


def _p(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


def recovery_rows(faults: list[dict]) -> list[list[object]]:
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for fault in faults:
        by_kind[fault["kind"]].append(fault)
    rows = []
    for kind in ("worker", "server", "db", "db_outage"):
        done = by_kind.get(kind, [])
        down = [f["down_seconds"] for f in done]
        rec = [f["recovery_seconds"] for f in done if f["recovery_seconds"] is not None]
        settle = [f["settle_seconds"] for f in done if f["settle_seconds"] is not None]
        rows.append(
            [
                LABELS[kind],
                len(done),
                f">= {TARGETS[kind]}",
                sum(f["in_flight"] for f in done),
                _p(down, 50),
                _p(rec, 50),
                _p(settle, 50),
                max(settle) if settle else None,
            ]
        )
    return rows


def chaos_text(report: dict) -> str:
    c = report["config"]
    faults = table(
        [
            "fault",
            "count",
            "target",
            "runs in flight",
            "down p50 s",
            "recovery p50 s",
            "settle p50 s",
            "settle max s",
        ],
        recovery_rows(report["faults"]),
    )
    rec = report["reconciliation"]
    checks = table(
        ["check", "result", "wanted"],
        [
            ["runs", c["runs"], f">= {TARGET_RUNS}"],
            [
                "run outcomes",
                ", ".join(f"{k}: {v}" for k, v in report["outcomes"].items()),
                "all COMPLETED (or FAILED, fully compensated)",
            ],
            [
                "workflows in Temporal",
                ", ".join(f"{k}: {v}" for k, v in report["workflows"].items()),
                "all COMPLETED",
            ],
            ["duplicate rows (natural keys, all tables)", sum(report["duplicates"].values()), 0],
            ["missing acks (pure reconciler, every run)", report["missing_acks"], 0],
            ["unexpected acks (drift)", report["drift_acks"], 0],
            [
                "hash chains",
                ", ".join(f"{k}: {v}" for k, v in report["chains"].items()),
                "all VERIFIED",
            ],
            [
                "ReconcileWorkflow past every deadline",
                f"checked {rec['runs_checked']}, stale {rec['stale']}, late {rec['late']}, "
                f"incomplete {rec['incomplete']}, new findings {rec['findings_new']}",
                "all 0",
            ],
            ["unplanned worker exits", report["unplanned_worker_exits"], 0],
        ],
    )
    verdict = "PASSED" if report["verdict"]["passed"] else "FAILED"
    lines = [
        f"chaos on {c['database']}: {c['runs']} runs of {c['steps']} steps in "
        f"{report['elapsed_seconds']}s, seed {c['seed']}",
        faults,
        "down: until the component is back (new worker polling, server port open, PostgreSQL "
        "accepting); recovery: fault -> first run finalized after the repair; settle: fault -> "
        "last run that was in flight at the fault finalized.",
        "",
        checks,
        "",
        f"verdict: {verdict}",
    ]
    lines += [f"  problem: {p}" for p in report["verdict"]["problems"]]
    return "\n".join(lines)
