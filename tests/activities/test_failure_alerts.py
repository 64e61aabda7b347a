"""Every failure raises something (issue 20, item 4), on both databases: the events a run
and the reconciliation publish become alerts of their type, through the fatigue controls,
and reach the tenant's sinks (a real local webhook receiver)."""

import uuid

import pytest

from db.queries.alerts import list_alerts
from domain.alert_fatigue import FatigueSettings
from domain.enums import IncidentCategory, Severity
from domain.ids import SYSTEM_TENANT
from domain.messages import IncidentRequest, RollbackRequest
from events.handlers import audit_handlers
from events.reactor import Reactor, ReactorConfig
from events.watchdog import Down, report_down
from services import incidents, sinks, tenants
from services.events import emit
from services.ledger import Execution
from tests.activities.test_alert_sinks import (
    SECRET,
    add_webhook,
    box,  # noqa: F401 - a fixture
    delivered,
    reactor_for,
    run_until,
    sender_for,
)
from tests.helpers import new_tenant
from tests.security_servers import allow_egress
from tests.sink_servers import receiver

pytestmark = pytest.mark.timeout(60)


def publish(sessions, tenant_id: str, topic: str, run: str | None, /, **payload) -> None:  # noqa: ANN001, ANN003
    with sessions.begin() as session:
        emit(session, key=uuid.uuid4().hex, topic=topic, tenant_id=tenant_id, run_id=run,
             payload=payload)  # fmt: skip


def audit_reactor_for(sessions) -> Reactor:  # noqa: ANN001
    cfg = ReactorConfig(group=f"test-failures-{uuid.uuid4().hex[:8]}", sweep_overlap=5)
    return Reactor(sessions, audit_handlers(FatigueSettings()), cfg)


def deliver(sessions) -> None:  # noqa: ANN001
    reactor = audit_reactor_for(sessions)
    for _ in range(50):
        if not reactor.poll_once():
            return


def alerts_of(sessions, tenant_id: str) -> list[tuple]:  # noqa: ANN001
    with sessions() as session:
        found = list_alerts(session, tenant_id, 50)
    return sorted((a["alert_type"], a["run_id"], a["domain"], a["severity"]) for a in found)


def open_incident(sessions, tenant_id: str, category: IncidentCategory,  # noqa: ANN001
                  severity: Severity = Severity.HIGH) -> tuple[str, str]:  # fmt: skip
    """An incident written as a run writes it: (run id, incident id)."""
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    request = IncidentRequest(run_id=run_id, tenant_id=tenant_id, severity=severity,
                              category=category, title="needs a look",
                              description="what happened")  # fmt: skip
    created = incidents.create_for_run(sessions, Execution(f"run-{run_id}", "e1"), request)
    return run_id, created.incident_id


def test_a_failure_no_incident_speaks_for_raises_run_failed(sessions):
    t = new_tenant(sessions)
    publish(sessions, t, "run.failed", "r-rolled", status="failed", cause="GOVERNANCE_ROLLBACK",
            reason="governance rolled back: incidents.create_for_run failed")  # fmt: skip
    publish(sessions, t, "run.failed", "r-cancel", status="cancelled", cause="CANCELLED",
            reason="workflow cancelled")  # fmt: skip
    # An incident speaks for these: its own incident.created raises the alert.
    publish(sessions, t, "run.failed", "r-policy", status="failed_policy",
            cause="POLICY_VIOLATION", reason="prevented by rule 'x' (BLOCKED)")  # fmt: skip
    publish(sessions, t, "run.failed", "r-old", status="failed", reason="before the patch")
    deliver(sessions)
    assert alerts_of(sessions, t) == [
        ("RUN_FAILED", "r-cancel", "orchestrator", "MEDIUM"),
        ("RUN_FAILED", "r-rolled", "orchestrator", "HIGH"),
    ]
    with sessions() as session:
        titles = {a["run_id"]: a["title"] for a in list_alerts(session, t, 50)}
    assert "GOVERNANCE_ROLLBACK" in titles["r-rolled"] and "incidents.create_for_run" in (
        titles["r-rolled"])  # fmt: skip


def test_an_incident_opened_raises_an_alert_of_its_severity_and_an_escalation_its_own(sessions):
    t = new_tenant(sessions)
    failed_run, failure = open_incident(sessions, t, IncidentCategory.RUN_FAILURE, Severity.LOW)
    paused_run, escalation = open_incident(sessions, t, IncidentCategory.PAUSE_ESCALATION)
    rolled_run, rolled = open_incident(sessions, t, IncidentCategory.POLICY_VIOLATION)
    incidents.rollback(sessions, Execution(f"run-{rolled_run}", "e1"),
                       RollbackRequest(run_id=rolled_run, tenant_id=t, reason="saga"))  # fmt: skip
    # A run publishes its incidents with its finalization; an escalation publishes its own.
    publish(sessions, t, "incident.created", failed_run, incident_id=failure)
    publish(sessions, t, "incident.created", rolled_run, incident_id=rolled)
    deliver(sessions)
    assert alerts_of(sessions, t) == [
        ("INCIDENT_OPENED", failed_run, "incidents", "LOW"),
        ("PAUSE_ESCALATION", paused_run, "incidents", "HIGH"),
    ]  # the rolled-back incident raised nothing
    with sessions() as session:
        details = {a["alert_type"]: a["details"] for a in list_alerts(session, t, 50)}
    assert details["PAUSE_ESCALATION"]["incident_id"] == escalation
    assert details["INCIDENT_OPENED"]["category"] == "RUN_FAILURE"


def test_an_expiring_pause_a_degraded_trace_and_a_failed_reconciliation_raise_alerts(sessions):
    t = new_tenant(sessions)
    publish(sessions, t, "run.pause_expiring", "r-paused", pause_no=1, reason="POLICY_CHANGE",
            sla_deadline="2026-12-01T16:00:00+00:00")  # fmt: skip
    publish(sessions, t, "trace.degraded", "r-untraced", error="trace store unreachable",
            severity="MEDIUM")  # fmt: skip
    workflow_id = f"reconcile-{uuid.uuid4().hex[:8]}"
    error = "ActivityError: reconcile_page failed"
    publish(sessions, SYSTEM_TENANT, "reconciliation.failed", None, workflow_id=workflow_id,
            run_id="tr-1", error=error, severity="HIGH")  # fmt: skip
    deliver(sessions)
    assert alerts_of(sessions, t) == [
        ("PAUSE_EXPIRING", "r-paused", "control", "MEDIUM"),
        ("TRACE_DEGRADED", "r-untraced", "traces", "MEDIUM"),
    ]
    with sessions() as session:
        system = [a for a in list_alerts(session, SYSTEM_TENANT, 200)
                  if a["details"].get("workflow_id") == workflow_id]  # fmt: skip
    assert [(a["alert_type"], a["domain"], a["severity"]) for a in system] == [
        ("RECONCILIATION_FAILED", "reconciliation", "HIGH")]  # fmt: skip
    assert "reconcile_page failed" in system[0]["title"]


def test_an_escalation_reaches_the_tenants_webhook(settings, sessions, box):  # noqa: F811
    t = new_tenant(sessions)
    with receiver(SECRET) as rx:
        allow_egress(sessions, t, rx.url)
        add_webhook(sessions, box, t, "pager", f"{rx.url}/page",
                    alert_types=["PAUSE_ESCALATION", "PAUSE_EXPIRING"])  # fmt: skip
        run_id, escalation = open_incident(sessions, t, IncidentCategory.PAUSE_ESCALATION)
        publish(sessions, t, "run.pause_expiring", run_id, pause_no=1, reason="OPERATOR",
                sla_deadline="2026-12-01T16:00:00+00:00")  # fmt: skip
        publish(sessions, t, "run.failed", run_id, status="cancelled", cause="CANCELLED",
                reason="workflow cancelled")  # not routed to this sink  # fmt: skip
        deliver(sessions)  # the audit handlers raise the alerts (alert.raised)
        sinks_reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(sinks_reactor, delivered(sessions, t, 2))
        got = rx.at("/page")
    assert all(r.verified for r in got)
    bodies = sorted((r.json["alert_type"], r.json["run_id"]) for r in got)
    assert bodies == [("PAUSE_ESCALATION", run_id), ("PAUSE_EXPIRING", run_id)]
    escalated = next(r.json for r in got if r.json["alert_type"] == "PAUSE_ESCALATION")
    assert escalated["details"]["incident_id"] == escalation


def test_a_reactor_down_reaches_the_operators_sink_of_the_system_tenant(settings, sessions, box):  # noqa: F811
    """The operator's own alerts belong to SYSTEM_TENANT: `starter.py tenant add _system`
    once, then its sinks as any tenant's."""
    tenants.add_tenant(sessions, SYSTEM_TENANT, exist_ok=True)
    name = f"ops-{uuid.uuid4().hex[:6]}"
    down = Down("audit-alerts", f"host:1:{uuid.uuid4().hex[:8]}", "silent", "no sign of life")
    with receiver(SECRET) as rx:
        allow_egress(sessions, SYSTEM_TENANT, rx.url)
        add_webhook(sessions, box, SYSTEM_TENANT, name, f"{rx.url}/ops",
                    alert_types=["REACTOR_DOWN"])  # fmt: skip
        try:
            with sessions.begin() as session:
                report_down(session, FatigueSettings(), down)
            sinks_reactor = reactor_for(sessions, sender_for(settings, sessions, box))
            run_until(
                sinks_reactor,
                lambda: any(
                    r.json["details"].get("reactor_id") == down.reactor_id for r in rx.at("/ops")
                ),
            )
        finally:
            sinks.delete_sink(sessions, SYSTEM_TENANT, name)
        (got,) = [r for r in rx.at("/ops") if r.json["details"]["reactor_id"] == down.reactor_id]
    assert got.verified and got.json["alert_type"] == "REACTOR_DOWN"
    assert got.json["tenant_id"] == SYSTEM_TENANT and got.json["severity"] == "HIGH"
