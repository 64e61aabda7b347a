"""OpenTelemetry for governed-runs: providers from OTEL_* variables, run-aware Temporal
tracing (``observability.tracing``) and the metric instruments (``observability.metrics``).
"""
