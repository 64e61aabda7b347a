"""Chaos: governed runs while the worker, the Temporal server and the database are crashed.

``starter.py chaos`` (cli.bench) drives it: tools.chaos.driver starts runs in
batches and injects faults between them (tools.chaos.faults), then
tools.chaos.verify checks that nothing was lost or duplicated. The private PostgreSQL
cluster (tools.chaos.pgcluster) and the worker subprocess (tools.chaos.processes) are
also used by the benchmarks.
"""
