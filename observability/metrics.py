"""The metrics of governed-runs, as small functions over the OpenTelemetry API.

Each function is a no-op until a meter provider is installed (``observability.setup``).
Instruments are created once per provider. Callers record after their transaction
committed, so a retried activity that finds its first result records nothing new.

| function | instrument | attributes |
|---|---|---|
| record_run_finished | governed_runs.runs.finished (counter) | tenant_id, phase, status |
| record_phase_durations | governed_runs.run.phase.duration (histogram, s) | tenant_id, phase |
| record_policy_decision | governed_runs.policy.decisions (counter) | tenant_id, decision |
| record_reconciliation | governed_runs.reconciliation.findings (counter) | kind |
| record_event_delivered / _failed | governed_runs.events.delivered / .failed | topic |
| record_alert_sent / _suppressed | governed_runs.alerts.sent / .suppressed | kind (, reason) |
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, MeterProvider

METER_NAME = "governed_runs"


@dataclass(frozen=True)
class Instruments:
    runs_finished: Counter
    phase_duration: Histogram
    policy_decisions: Counter
    reconciliation_findings: Counter
    events_delivered: Counter
    events_failed: Counter
    alerts_sent: Counter
    alerts_suppressed: Counter


@lru_cache(maxsize=4)
def _instruments_for(provider: MeterProvider) -> Instruments:
    meter = provider.get_meter(METER_NAME)
    return Instruments(
        runs_finished=meter.create_counter(
            "governed_runs.runs.finished", unit="{run}", description="runs by outcome"
        ),
        phase_duration=meter.create_histogram(
            "governed_runs.run.phase.duration", unit="s", description="time a run spent in a phase"
        ),
        policy_decisions=meter.create_counter(
            "governed_runs.policy.decisions",
            unit="{decision}",
            description="mid-execution policy check decisions",
        ),
        reconciliation_findings=meter.create_counter(
            "governed_runs.reconciliation.findings",
            unit="{finding}",
            description="reconciliation findings by kind: missing, drift, stale",
        ),
        events_delivered=meter.create_counter(
            "governed_runs.events.delivered", unit="{event}", description="outbox events delivered"
        ),
        events_failed=meter.create_counter(
            "governed_runs.events.failed", unit="{event}", description="outbox deliveries failed"
        ),
        alerts_sent=meter.create_counter(
            "governed_runs.alerts.sent", unit="{alert}", description="alerts sent"
        ),
        alerts_suppressed=meter.create_counter(
            "governed_runs.alerts.suppressed",
            unit="{alert}",
            description="alerts suppressed (dedup window, cooldown, hourly cap)",
        ),
    )


def instruments() -> Instruments:
    return _instruments_for(metrics.get_meter_provider())


def phase_durations(
    transitions: Sequence[tuple[str, datetime]], ended_at: datetime
) -> list[tuple[str, float]]:
    """Seconds spent in each phase, from the (to_phase, at) transitions in order."""
    spans = []
    for (phase, started), nxt in zip(
        transitions, [*transitions[1:], (None, ended_at)], strict=True
    ):
        spans.append((phase, max((nxt[1] - started).total_seconds(), 0.0)))
    return spans


def record_run_finished(
    tenant_id: str, phase: str, status: str, transitions: Sequence[tuple[str, datetime]]
) -> None:
    """A run reached COMPLETED/FAILED: count its outcome and record each phase's duration.

    ``transitions`` are the run's (to_phase, at) rows in order, the terminal one last.
    """
    found = instruments()
    found.runs_finished.add(1, {"tenant_id": tenant_id, "phase": phase, "status": status})
    if len(transitions) < 2:
        return
    ended_at = transitions[-1][1]
    for name, seconds in phase_durations(transitions[:-1], ended_at):
        found.phase_duration.record(seconds, {"tenant_id": tenant_id, "phase": name})


def record_policy_decision(tenant_id: str, decision: str) -> None:
    instruments().policy_decisions.add(1, {"tenant_id": tenant_id, "decision": decision})


def record_reconciliation(missing: int = 0, drift: int = 0, stale: int = 0) -> None:
    """Findings of one reconciliation pass (zero counts are not recorded)."""
    counter = instruments().reconciliation_findings
    for kind, amount in (("missing", missing), ("drift", drift), ("stale", stale)):
        if amount:
            counter.add(amount, {"kind": kind})


def record_event_delivered(topic: str) -> None:
    instruments().events_delivered.add(1, {"topic": topic})


def record_event_failed(topic: str) -> None:
    instruments().events_failed.add(1, {"topic": topic})


def record_alert_sent(kind: str) -> None:
    instruments().alerts_sent.add(1, {"kind": kind})


def record_alert_suppressed(kind: str, reason: str) -> None:
    instruments().alerts_suppressed.add(1, {"kind": kind, "reason": reason})
