"""Findings of the scheduled reconciliation: what a run's contract and its workflow say.

Pure code. ``assess`` combines the reconciler (domain.reconciler) with what Temporal
says about the run's workflow; ``event_plan`` turns the findings that are new into
outbox events. One root cause gives one event: a stale run's missing actions travel
inside its ``audit.reconciliation.stale`` event instead of a missing event each.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.contract import FINALIZE_RUN
from domain.enums import Severity
from domain.ids import derive_id
from domain.reconciler import AckRow, Action, ExpectationRow, Reconciliation, reconcile


class FindingKind(StrEnum):
    MISSING = "MISSING"  # expected, never acked (run finalized or its workflow closed)
    DRIFT = "DRIFT"  # acked, never expected (or acked twice)
    STALE = "STALE"  # workflow closed (or gone) and finalize_run never acked
    LATE = "LATE"  # workflow still running past a deadline
    INVALID = "INVALID"  # expectation without deadline: the contract is malformed


class WorkflowState(StrEnum):
    """What Temporal says about ``run-<run_id>`` (names of WorkflowExecutionStatus)."""

    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"
    TIMED_OUT = "TIMED_OUT"
    NOT_FOUND = "NOT_FOUND"


# What the cross-check of open runs acts on: a closure Temporal reported, or no workflow at
# all. RUNNING is never acted on, nor CONTINUED_AS_NEW (the run goes on in a new execution).
CLOSED = frozenset(
    {
        WorkflowState.COMPLETED,
        WorkflowState.FAILED,
        WorkflowState.CANCELED,
        WorkflowState.TERMINATED,
        WorkflowState.TIMED_OUT,
        WorkflowState.NOT_FOUND,
    }
)


def closure_cause(state: WorkflowState, closed_at: datetime | None = None) -> str:
    """Why a run whose workflow ended is stale, as its finding and its run row say it:
    "workflow TERMINATED at 2026-01-02T03:04:05+00:00 without finalizing"."""
    if state == WorkflowState.NOT_FOUND:
        return "workflow not found (never started, or gone) without finalizing"
    at = f" at {closed_at.isoformat()}" if closed_at is not None else ""
    return f"workflow {state}{at} without finalizing"


SEVERITY = {
    FindingKind.MISSING: Severity.HIGH,
    FindingKind.DRIFT: Severity.MEDIUM,
    FindingKind.STALE: Severity.HIGH,
    FindingKind.LATE: Severity.MEDIUM,
    FindingKind.INVALID: Severity.HIGH,
}

TOPIC_MISSING = "audit.reconciliation.missing"
TOPIC_DRIFT = "audit.reconciliation.drift"
TOPIC_STALE = "audit.reconciliation.stale"
TOPIC_INVALID = "audit.reconciliation.invalid"
TOPIC_TIMEOUT = "audit.expectation.timeout"


@dataclass(frozen=True)
class Finding:
    run_id: str
    kind: FindingKind
    domain: str
    action: str
    cause: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Same run, kind and action → same id: a second reconciliation writes nothing."""
        return derive_id("finding", self.run_id, self.kind, self.domain, self.action)

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


@dataclass(frozen=True)
class Assessment:
    run_id: str
    reconciliation: Reconciliation
    state: WorkflowState
    overdue: list[Action]
    findings: list[Finding]

    @property
    def verdict(self) -> str:
        """STALE, LATE, INCOMPLETE or COMPLETE, as an operator reads it."""
        if self.reconciliation.stale:
            return "LATE" if self.state == WorkflowState.RUNNING else "STALE"
        return self.reconciliation.status


def _pairs(actions: list[Action]) -> list[list[str]]:
    return [list(a) for a in actions]


def assess(
    run_id: str,
    expectations: list[ExpectationRow],
    acks: list[AckRow],
    state: WorkflowState,
    as_of: datetime,
    cause: str | None = None,
) -> Assessment:
    """The findings of one run as of ``as_of``, given its workflow's state; ``cause``: why
    a stale run is stale (domain.reconciliation.closure_cause; default: the state)."""
    rec = reconcile(expectations, acks, as_of)
    deadlines = {(e.domain, e.action): e.deadline for e in expectations if not e.withdrawn}
    overdue = [a for a in rec.missing if deadlines.get(a) is not None and deadlines[a] <= as_of]
    findings = [Finding(run_id, FindingKind.INVALID, d, a) for d, a in rec.invalid]
    findings += [Finding(run_id, FindingKind.DRIFT, d, a) for d, a in rec.drift]
    if rec.stale and state == WorkflowState.RUNNING:
        if overdue:
            details = {"overdue": _pairs(overdue)}
            findings.append(Finding(run_id, FindingKind.LATE, *FINALIZE_RUN, state, details))
    else:
        findings += [Finding(run_id, FindingKind.MISSING, d, a) for d, a in rec.missing]
        if rec.stale:
            details = {"missing": _pairs(rec.missing)}
            stale = Finding(run_id, FindingKind.STALE, *FINALIZE_RUN, cause or state, details)
            findings.append(stale)
    return Assessment(run_id, rec, state, overdue, findings)


@dataclass(frozen=True)
class PlannedEvent:
    topic: str
    key: str
    payload: dict[str, Any]


def event_plan(assessment: Assessment, new: list[Finding]) -> list[PlannedEvent]:
    """Outbox events for the findings that are new (none when nothing is new)."""
    run_id = assessment.run_id
    by_kind: dict[FindingKind, list[Finding]] = defaultdict(list)
    for finding in new:
        by_kind[finding.kind].append(finding)
    events: list[PlannedEvent] = []

    def add(topic: str, group: list[Finding], payload: dict[str, Any]) -> None:
        key = "reconcile/" + run_id + "/" + ",".join(sorted(f.id for f in group))
        events.append(PlannedEvent(topic, key, {"severity": group[0].severity, **payload}))

    for finding in by_kind[FindingKind.STALE]:
        missing = _pairs(assessment.reconciliation.missing)
        payload = {"domain": finding.domain, "cause": finding.cause, "missing": missing}
        add(TOPIC_STALE, [finding], payload)
    for finding in by_kind[FindingKind.LATE]:
        payload = {"domain": finding.domain, "cause": finding.cause, **finding.details}
        add(TOPIC_TIMEOUT, [finding], payload)
    if by_kind[FindingKind.INVALID]:
        group = by_kind[FindingKind.INVALID]
        add(TOPIC_INVALID, group, {"domain": "audit", "actions": _actions(group)})
    grouped = [(TOPIC_DRIFT, by_kind[FindingKind.DRIFT])]
    if not assessment.reconciliation.stale:
        grouped.append((TOPIC_MISSING, by_kind[FindingKind.MISSING]))
    for topic, findings in grouped:
        per_domain: dict[str, list[Finding]] = defaultdict(list)
        for finding in findings:
            per_domain[finding.domain].append(finding)
        for domain in sorted(per_domain):
            group = per_domain[domain]
            add(topic, group, {"domain": domain, "actions": _actions(group)})
    return events


def _actions(findings: list[Finding]) -> list[list[str]]:
    return sorted([f.domain, f.action] for f in findings)
