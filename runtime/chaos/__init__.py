"""Chaos: governed runs while the worker, the Temporal server and the database are crashed.

``starter.py chaos`` (runtime.cli.bench) drives it: runtime.chaos.driver starts runs in
batches and injects faults between them (runtime.chaos.faults), then
runtime.chaos.verify checks that nothing was lost or duplicated. The private PostgreSQL
cluster (runtime.chaos.pgcluster) and the worker subprocess (runtime.chaos.processes) are
also used by the benchmarks.
"""
