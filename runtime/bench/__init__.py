"""Benchmarks: what governance costs, and how the stack holds up at scale.

``starter.py bench`` (runtime.cli.bench) runs, in one process on one embedded server,
governed runs against a bare workflow with the same number of no-op activities
(runtime.bench.runner), then the stale-run scan on PostgreSQL (runtime.bench.stale_scan)
and the paused-runs memory benchmark (runtime.bench.paused). Figures and targets are
assembled and plotted by runtime.bench.report.
"""
