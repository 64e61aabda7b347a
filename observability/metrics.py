"""The metrics of governed-runs, as small functions over the OpenTelemetry API.

Each function is a no-op until a meter provider is installed (``observability.setup``).
Instruments are created once per provider. Callers record after their transaction
committed, so a retried activity that finds its first result records nothing new.

Instruments (all named ``governed_runs.…``; counters unless said), their attributes, and
the function that records them:

- runs.finished (tenant_id, phase, status) and run.phase.duration (histogram, s; tenant_id,
  phase): record_run_finished
- policy.decisions (tenant_id, decision): record_policy_decision (the check before step 0),
  record_policy_check, which also records policy.check.duration (histogram, s)
- reconciliation.findings (kind: missing, drift, stale): record_reconciliation
- events.received, events.delivered, events.failed (topic, handler) and
  events.handler.duration (histogram, s; topic, handler): record_events_received,
  record_event_delivered, record_event_failed
- reactor.heartbeats, reactor.heartbeat.misses (group): record_heartbeat
- reactor.restarts (group, cause: ended, silent): record_reactor_restart (events.watchdog)
- alerts.sent (tenant_id, kind), alerts.suppressed (tenant_id, kind, reason):
  record_alert_sent, record_alert_suppressed
- notifications.deliveries (sink_kind, outcome): record_notification
- retention.purged (table): record_purged

Attributes are bounded: tenants, topics, handler and group names, enum values — never a run
id or an event id.

The model calls' instruments keep the OpenTelemetry GenAI names instead
(gen_ai.client.token.usage, gen_ai.client.operation.duration): observability.genai.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, MeterProvider

METER_NAME = "governed_runs"
# Seconds: a policy check or a handler takes milliseconds, a slow receiver up to its timeout.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Instruments:
    runs_finished: Counter
    phase_duration: Histogram
    policy_decisions: Counter
    policy_check_duration: Histogram
    reconciliation_findings: Counter
    events_received: Counter
    events_delivered: Counter
    events_failed: Counter
    handler_duration: Histogram
    reactor_heartbeats: Counter
    reactor_heartbeat_misses: Counter
    reactor_restarts: Counter
    alerts_sent: Counter
    alerts_suppressed: Counter
    notification_deliveries: Counter
    retention_purged: Counter


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
            description="policy check decisions (mid-execution, and the one before step 0)",
        ),
        policy_check_duration=meter.create_histogram(
            "governed_runs.policy.check.duration",
            unit="s",
            description="time a mid-execution policy check took (control.check_policy)",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        ),
        reconciliation_findings=meter.create_counter(
            "governed_runs.reconciliation.findings",
            unit="{finding}",
            description="reconciliation findings by kind: missing, drift, stale",
        ),
        events_received=meter.create_counter(
            "governed_runs.events.received",
            unit="{event}",
            description="outbox events the reactor took up, one per handler of their topic",
        ),
        events_delivered=meter.create_counter(
            "governed_runs.events.delivered",
            unit="{event}",
            description="outbox events a handler handled",
        ),
        events_failed=meter.create_counter(
            "governed_runs.events.failed",
            unit="{event}",
            description="handler attempts that failed (each is retried)",
        ),
        handler_duration=meter.create_histogram(
            "governed_runs.events.handler.duration",
            unit="s",
            description="time one delivery to a handler took, its transaction included",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        ),
        reactor_heartbeats=meter.create_counter(
            "governed_runs.reactor.heartbeats",
            unit="{heartbeat}",
            description="reactor heartbeats written",
        ),
        reactor_heartbeat_misses=meter.create_counter(
            "governed_runs.reactor.heartbeat.misses",
            unit="{heartbeat}",
            description="heartbeat intervals that passed without a heartbeat (counted at the "
            "next one)",
        ),
        reactor_restarts=meter.create_counter(
            "governed_runs.reactor.restarts",
            unit="{restart}",
            description="reactors the watchdog found dead or stalled and restarted",
        ),
        alerts_sent=meter.create_counter(
            "governed_runs.alerts.sent", unit="{alert}", description="alerts sent"
        ),
        alerts_suppressed=meter.create_counter(
            "governed_runs.alerts.suppressed",
            unit="{alert}",
            description="alerts suppressed (dedup window, cooldown, hourly cap)",
        ),
        notification_deliveries=meter.create_counter(
            "governed_runs.notifications.deliveries",
            unit="{attempt}",
            description="attempts to deliver an alert to a sink, by sink kind and outcome",
        ),
        retention_purged=meter.create_counter(
            "governed_runs.retention.purged",
            unit="{row}",
            description="expired rows the reconciliation purged, by table",
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


def record_policy_check(tenant_id: str, decision: str, seconds: float) -> None:
    """A mid-execution policy check that decided (not a replay of its first result)."""
    found = instruments()
    attributes = {"tenant_id": tenant_id, "decision": decision}
    found.policy_decisions.add(1, attributes)
    found.policy_check_duration.record(seconds, attributes)


def record_reconciliation(missing: int = 0, drift: int = 0, stale: int = 0) -> None:
    """Findings of one reconciliation pass (zero counts are not recorded)."""
    counter = instruments().reconciliation_findings
    for kind, amount in (("missing", missing), ("drift", drift), ("stale", stale)):
        if amount:
            counter.add(amount, {"kind": kind})


def record_events_received(received: Mapping[tuple[str, str], int]) -> None:
    """Delivery rows a reactor created: how many per (topic, handler)."""
    counter = instruments().events_received
    for (topic, handler), amount in received.items():
        counter.add(amount, {"topic": topic, "handler": handler})


def record_event_delivered(topic: str, handler: str, seconds: float) -> None:
    found = instruments()
    found.events_delivered.add(1, {"topic": topic, "handler": handler})
    found.handler_duration.record(seconds, {"topic": topic, "handler": handler})


def record_event_failed(topic: str, handler: str, seconds: float) -> None:
    found = instruments()
    found.events_failed.add(1, {"topic": topic, "handler": handler})
    found.handler_duration.record(seconds, {"topic": topic, "handler": handler})


def record_heartbeat(group: str, missed: int = 0) -> None:
    """A heartbeat written, and the intervals before it that had none."""
    found = instruments()
    found.reactor_heartbeats.add(1, {"group": group})
    if missed:
        found.reactor_heartbeat_misses.add(missed, {"group": group})


def record_reactor_restart(group: str, cause: str) -> None:
    instruments().reactor_restarts.add(1, {"group": group, "cause": cause})


def record_alert_sent(tenant_id: str, kind: str) -> None:
    instruments().alerts_sent.add(1, {"tenant_id": tenant_id, "kind": kind})


def record_alert_suppressed(tenant_id: str, kind: str, reason: str) -> None:
    instruments().alerts_suppressed.add(1, {"tenant_id": tenant_id, "kind": kind, "reason": reason})


def record_notification(sink_kind: str, outcome: str) -> None:
    """One attempt to deliver an alert to a sink (DELIVERED, FAILED, REFUSED)."""
    instruments().notification_deliveries.add(1, {"sink_kind": sink_kind, "outcome": outcome})


def record_purged(counts: Mapping[str, int]) -> None:
    """Expired rows deleted by one committed purge page, per table."""
    found = instruments()
    for table, rows in counts.items():
        if rows:
            found.retention_purged.add(rows, {"table": table})
