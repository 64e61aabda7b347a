"""Benchmarks: what governance costs, and how the stack holds up at scale.

``starter.py bench`` (cli.bench) runs, in one process on one embedded server,
governed runs against a bare workflow with the same number of no-op activities
(tools.bench.runner), then the stale-run scan on PostgreSQL (tools.bench.stale_scan)
and the paused-runs memory benchmark (tools.bench.paused). Figures and targets are
assembled and plotted by tools.bench.report.
"""
