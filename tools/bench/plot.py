"""The benchmark's PNG: latency distributions, where the time goes, worker memory.

matplotlib (the ``dev`` extra) is imported only when a plot is asked for.
"""

from pathlib import Path

from tools.bench.stats import RunSample

COLORS = {"governed": "#1f77b4", "bare": "#ff7f0e"}


def _cdf(ax, samples: dict[str, list[RunSample]], value, title: str) -> None:  # noqa: ANN001
    for kind, runs in samples.items():
        ms = sorted(v * 1000 for v in (value(s) for s in runs) if v is not None)
        if ms:
            ax.plot(
                ms, [(i + 1) / len(ms) for i in range(len(ms))], label=kind, color=COLORS.get(kind)
            )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of runs")
    ax.grid(alpha=0.3)
    ax.legend()


def _activities(ax, results: dict) -> None:  # noqa: ANN001
    per_run = results.get("activity_ms_per_run", {})
    names = list(per_run.get("unloaded", {}))[:12][::-1]
    for offset, phase, color in ((-0.2, "unloaded", "#2ca02c"), (0.2, "loaded", "#d62728")):
        values = [per_run.get(phase, {}).get(n, {}).get("ms", 0) for n in names]
        ax.barh(
            [i + offset for i in range(len(names))], values, height=0.4, label=phase, color=color
        )
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title("governed run: activity time per run (L: local)", fontsize=10)
    ax.set_xlabel("ms per run")
    ax.legend()


def _memory(ax, results: dict) -> None:  # noqa: ANN001
    paused = results.get("paused", {})
    timeline = paused.get("rss_timeline")
    if not timeline:
        ax.text(
            0.5,
            0.5,
            f"paused-runs benchmark: {paused.get('skipped', 'not run')}",
            ha="center",
            va="center",
            fontsize=9,
        )
        ax.set_axis_off()
        return
    xs = [t for t, _ in timeline["samples"]]
    ax.plot(xs, [mb for _, mb in timeline["samples"]], color="#9467bd")
    for name, at in timeline["marks"].items():
        ax.axvline(at, color="grey", linestyle="--", linewidth=0.8)
        ax.text(at, 0.97, f" {name}", fontsize=7, va="top", rotation=90,
                transform=ax.get_xaxis_transform())  # fmt: skip
    ax.axhline(500, color="red", linewidth=0.8, label="target 500 MB")
    ax.set_title(f"worker RSS, {paused['runs']:,} runs paused then resumed", fontsize=10)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MB")
    ax.legend(loc="lower right")


def plot(results: dict, samples: dict[str, dict[str, list[RunSample]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    c = results["config"]
    loaded = samples.get("loaded", {})
    _cdf(
        axes[0][0],
        loaded,
        lambda s: s.end_to_end,
        f"end-to-end latency, k={c['steps']}, concurrency {c['concurrency']}",
    )
    _cdf(
        axes[0][1],
        samples.get("unloaded", {}),
        lambda s: s.start_latency,
        "start latency (request → first step executing), unloaded",
    )
    _activities(axes[1][0], results)
    _memory(axes[1][1], results)
    m = results["machine"]
    fig.suptitle(
        f"governed-runs benchmark — {m['cores']} cores, {m['memory_gib']} GiB, Python "
        f"{m['python']}, Temporal CLI {m['temporal_cli'].split()[0]}, app DB {m['app_database']}",
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
