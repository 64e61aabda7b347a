"""The benchmark's figures as markdown tables, the targets (met / not met), and the plot.

Targets are printed beside the measured values; they are never asserted by a test.
"""

import math

from tools.bench.machine import describe_text

GOVERNED, BARE = "governed", "bare"


def _target(name: str, measured: float | None, op: str, bound: float, unit: str, note: str = ""):  # noqa: ANN202
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        met = None
    else:
        met = measured >= bound if op == ">=" else measured <= bound
    return {
        "name": name,
        "measured": measured,
        "target": f"{op} {bound:g}{unit}",
        "met": met,
        "note": note,
    }


def evaluate_targets(r: dict) -> list[dict]:
    """Each target of the issue, with the figure it is judged on."""
    targets = []
    steps = r.get("config", {}).get("steps")
    at = f"k={steps}" + ("" if steps == 8 else " (target is for k=8)")
    if "ratios" in r:
        targets.append(
            _target(
                "governed/bare throughput (loaded)",
                r["ratios"]["throughput_ratio"],
                ">=",
                0.9,
                "",
                at,
            )
        )
        targets.append(
            _target(
                "governed/bare p50 latency (loaded)",
                r["ratios"]["latency_p50_ratio"],
                "<=",
                1.25,
                "",
                at,
            )
        )
        targets.append(
            _target(
                "unloaded p50 of a governed run",
                r["unloaded"][GOVERNED]["end_to_end_ms"]["p50"],
                "<=",
                200,
                " ms",
                at,
            )
        )
        targets.append(
            _target(
                "start latency p50 (governed, unloaded)",
                r["unloaded"][GOVERNED]["start_ms"]["p50"],
                "<=",
                50,
                " ms",
            )
        )
    scan = r.get("stale_scan", {})
    if "first_page_warm_ms" in scan:
        targets.append(
            _target(
                "stale-scan first page, warm",
                scan["first_page_warm_ms"],
                "<=",
                10,
                " ms",
                f"{scan['rows']:,} rows",
            )
        )
    paused = r.get("paused", {})
    if "worker_rss_peak_mb" in paused:
        targets.append(
            _target(
                "worker RSS, runs paused at once (peak)",
                paused["worker_rss_peak_mb"],
                "<=",
                500,
                " MB",
                f"{paused['runs']:,} runs",
            )
        )
    return targets


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def comparison_table(r: dict) -> str:
    rows = []
    for phase in ("loaded", "unloaded"):
        g, b = r[phase][GOVERNED], r[phase][BARE]
        label = f"c={g['concurrency']}"
        for title, key, sub in (
            ("runs/s", "runs_per_second", None),
            ("end-to-end p50 ms", "end_to_end_ms", "p50"),
            ("end-to-end p99 ms", "end_to_end_ms", "p99"),
            ("start latency p50 ms", "start_ms", "p50"),
            ("start latency p99 ms", "start_ms", "p99"),
        ):
            gv, bv = (g[key], b[key]) if sub is None else (g[key][sub], b[key][sub])
            rows.append([f"{title} ({phase}, {label})", gv, bv, round(gv / bv, 2) if bv else None])
    hist = r["history_per_run"]
    for key in (
        "workflow_tasks",
        "activities",
        "local_activities",
        "search_attribute_upserts",
        "events",
        "history_bytes",
    ):
        gv, bv = hist[GOVERNED][key], hist[BARE][key]
        rows.append([f"{key.replace('_', ' ')} per run", gv, bv, round(gv / bv, 2) if bv else None])
    return table(["figure", "governed", "bare", "governed/bare"], rows)


def activity_table(r: dict) -> str:
    unloaded, loaded = r["activity_ms_per_run"]["unloaded"], r["activity_ms_per_run"]["loaded"]
    rows = [
        [
            name,
            unloaded[name]["count"],
            unloaded[name]["ms"],
            loaded.get(name, {}).get("ms"),
            loaded.get(name, {}).get("cpu_ms"),
        ]
        for name in unloaded
    ]
    rows.append(
        [
            "sum",
            None,
            sum(v["ms"] for v in unloaded.values()),
            sum(v["ms"] for v in loaded.values()),
            sum(v["cpu_ms"] for v in loaded.values()),
        ]
    )
    header = ["activity (L: local)", "per run", "ms/run unloaded", "ms/run loaded"]
    return table([*header, "CPU ms/run loaded"], rows)


def cpu_table(r: dict) -> str:
    """CPU per loaded run of each kind, and what it bounds."""
    g, b = r["loaded"][GOVERNED]["cpu_ms_per_run"], r["loaded"][BARE]["cpu_ms_per_run"]
    activity = r["activity_cpu_ms_per_run"]
    rows = [
        [f"CPU ms per run: {label}", g[key], b[key], round(g[key] / b[key], 2) if b[key] else None]
        for label, key in (
            ("client + worker process", "client_and_worker"),
            ("Temporal server", "server"),
            ("both", "total"),
        )
    ]
    rows.append(["CPU ms per run: activity functions", activity[GOVERNED], activity[BARE], None])
    ratios = r["ratios"]
    rows += [
        ["throughput ratio, measured", None, None, ratios["throughput_ratio"]],
        ["CPU ratio (bare/governed CPU per run)", None, None, ratios["cpu_ratio"]],
        [
            "throughput ratio if governance cost only its activities' CPU",
            None,
            None,
            ratios["throughput_ratio_ceiling"],
        ],
    ]
    return table(["figure (loaded)", "governed", "bare", "governed/bare"], rows)


def dict_table(d: dict, skip: tuple[str, ...] = ()) -> str:
    rows = [[k.replace("_", " "), v] for k, v in d.items() if k not in skip]
    return table(["figure", "value"], rows)


def targets_table(targets: list[dict]) -> str:
    def verdict(t: dict) -> str:
        return "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")

    rows = [[t["name"], t["measured"], t["target"], verdict(t), t["note"]] for t in targets]
    return table(["target", "measured", "target", "verdict", "note"], rows)


def text_report(r: dict) -> str:
    parts = [f"machine: {describe_text(r['machine'])}"]
    c = r["config"]
    if "loaded" in r:
        parts.append(
            f"\ngoverned vs bare: k={c['steps']} steps, {c['runs']} runs of each kind "
            f"at concurrency {c['concurrency']}, {c['unloaded_runs']} one at a time"
        )
        parts += [
            comparison_table(r),
            "\nCPU per run (this process: the client and the worker; and the server):",
            cpu_table(r),
            "\nwhere a governed run's time goes (activity time per run):",
            activity_table(r),
        ]
    for key, title in (
        ("stale_scan", "stale-run scan (PostgreSQL)"),
        ("paused", "paused runs (worker subprocess)"),
        ("fairness", "fairness: a quiet tenant's one-step run while another floods the worker"),
    ):
        part = r.get(key, {})
        if "skipped" in part:
            parts.append(f"\n{title}: skipped ({part['skipped']})")
        elif part:
            parts += [f"\n{title}:", dict_table(part, skip=("plan", "rss_timeline"))]
    parts += ["\ntargets (printed, never asserted):", targets_table(r["targets"])]
    return "\n".join(parts)
