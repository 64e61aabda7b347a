"""Audit handlers: reconciliation findings and failed runs become alerts (through fatigue).

| topic                          | alert                 | domain of the alert  |
|--------------------------------|-----------------------|----------------------|
| audit.reconciliation.stale     | STALE_RUN             | orchestrator         |
| audit.expectation.timeout      | MISSING_ACK           | orchestrator         |
| audit.reconciliation.missing   | MISSING_ACK           | the missing actions' |
| audit.reconciliation.drift     | DRIFT                 | the unexpected acks' |
| audit.reconciliation.invalid   | RECONCILIATION_FAILED | audit                |
| run.failed                     | RECONCILIATION_FAILED | audit                |
| run.failed (rollback, cancel)  | RUN_FAILED            | orchestrator         |
| incident.created               | INCIDENT_OPENED, or PAUSE_ESCALATION | incidents |
| run.pause_expiring             | PAUSE_EXPIRING        | control              |
| trace.degraded                 | TRACE_DEGRADED        | traces               |
| reconciliation.failed          | RECONCILIATION_FAILED | reconciliation (SYSTEM_TENANT) |

A failed run raises a RECONCILIATION_FAILED alert only when its contract does not
reconcile, and not when the reconciliation failed it (``stale`` in the event): its
STALE_RUN alert says so already. A failed run raises RUN_FAILED when no incident speaks for
it: its governance rolled back (cause GOVERNANCE_ROLLBACK) or it was cancelled (CANCELLED);
every other failure has an incident, whose ``incident.created`` raises INCIDENT_OPENED. An
incident rolled back before its event was handled raises nothing. Alerts go through the
fatigue controls (services.alerts), in the delivery's transaction.
"""

from sqlalchemy.orm import Session, sessionmaker

from db.models import Incident
from domain import reconciliation as rc
from domain.alert_fatigue import AlertType, FatigueSettings
from domain.enums import IncidentCategory, IncidentStatus, Severity
from domain.reconciler import reconcile
from events.reactor import Reactor, ReactorConfig
from events.registry import Event, HandlerContext, Handlers
from runtime.settings import Settings
from services.alerts import AlertSpec, raise_alert
from services.audit import load_contract

AUDIT_GROUP = "audit-alerts"


def default_fatigue(settings: Settings) -> FatigueSettings:
    """The operator's fatigue controls; a tenant's own settings override them."""
    return FatigueSettings(
        alerts_enabled=True,
        fatigue_enabled=settings.alert_fatigue_enabled,
        max_alerts_per_hour=settings.max_alerts_per_tenant_per_hour,
        dedup_window_seconds=settings.dedup_window_seconds,
        domain_cooldowns=dict(settings.alert_domain_cooldowns),
    )


def _actions(pairs: list[list[str]]) -> str:
    return ", ".join(f"{d}/{a}" for d, a in pairs)


def audit_handlers(defaults: FatigueSettings) -> Handlers:
    handlers = Handlers()

    def alert(ctx: HandlerContext, event: Event, alert_type: AlertType, domain: str,
              title: str, *, severity: Severity | None = None, about: str | None = None,
              details: dict | None = None) -> None:  # fmt: skip
        """``about``: what the dedup key names (the run, unless said otherwise)."""
        spec = AlertSpec(
            tenant_id=event.tenant_id,
            alert_type=alert_type,
            severity=severity or Severity(event.payload.get("severity", Severity.HIGH)),
            domain=domain,
            run_id=event.run_id,
            dedup_key=f"{alert_type}:{about or event.run_id}:{domain}",
            title=title,
            details={"topic": event.topic, **event.payload, **(details or {})},
            source_event_id=event.id,
        )
        raise_alert(ctx.session, defaults, spec, ctx.now)

    @handlers.on(rc.TOPIC_STALE, name="audit.alert.stale_run")
    def stale_run(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Run {event.run_id} is stale: {p['cause']}; missing: {_actions(p['missing'])}"
        alert(ctx, event, AlertType.STALE_RUN, p["domain"], title)

    @handlers.on(rc.TOPIC_TIMEOUT, name="audit.alert.expectation_timeout")
    def expectation_timeout(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Run {event.run_id} is still running past its deadlines: {_actions(p['overdue'])}"
        alert(ctx, event, AlertType.MISSING_ACK, p["domain"], title)

    @handlers.on(rc.TOPIC_MISSING, name="audit.alert.missing_ack")
    def missing_ack(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Run {event.run_id} finished without: {_actions(p['actions'])}"
        alert(ctx, event, AlertType.MISSING_ACK, p["domain"], title)

    @handlers.on(rc.TOPIC_DRIFT, name="audit.alert.drift")
    def drift(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Run {event.run_id} did what nobody expected: {_actions(p['actions'])}"
        alert(ctx, event, AlertType.DRIFT, p["domain"], title)

    @handlers.on(rc.TOPIC_INVALID, name="audit.alert.invalid_contract")
    def invalid_contract(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Run {event.run_id} has expectations without deadline: {_actions(p['actions'])}"
        alert(ctx, event, AlertType.RECONCILIATION_FAILED, "audit", title)

    @handlers.on("run.failed", name="audit.alert.failed_run_reconciliation")
    def failed_run(ctx: HandlerContext, event: Event) -> None:
        """A failed run must still reconcile (its contract closed); alert when it does not."""
        if event.run_id is None or event.payload.get("stale"):
            return
        expectations, acks = load_contract(ctx.session, event.run_id)
        result = reconcile(expectations, acks, ctx.now)
        if result.clean:
            return
        problems = {
            "status": result.status,
            "missing": [list(a) for a in result.missing],
            "drift": [list(a) for a in result.drift],
            "invalid": [list(a) for a in result.invalid],
        }
        failed = Event(
            event.id,
            event.topic,
            event.tenant_id,
            event.run_id,
            {**event.payload, **problems},
            event.created_at,
        )
        title = (
            f"Failed run {event.run_id} does not reconcile ({result.status}): "
            f"missing {_actions(problems['missing']) or '-'}; "
            f"drift {_actions(problems['drift']) or '-'}"
        )
        alert(ctx, failed, AlertType.RECONCILIATION_FAILED, "audit", title)

    @handlers.on("run.failed", name="audit.alert.run_failed")
    def run_failed(ctx: HandlerContext, event: Event) -> None:
        """A failure no incident speaks for: a governance rollback, a cancellation."""
        cause = event.payload.get("cause")
        if cause not in UNINCIDENTED_FAILURES:
            return
        title = f"Run {event.run_id} failed ({cause}): {event.payload.get('reason')}"
        alert(ctx, event, AlertType.RUN_FAILED, "orchestrator", title,
              severity=UNINCIDENTED_FAILURES[cause])  # fmt: skip

    @handlers.on("incident.created", name="audit.alert.incident_opened")
    def incident_opened(ctx: HandlerContext, event: Event) -> None:
        incident = ctx.session.get(Incident, event.payload["incident_id"])
        if incident is None or incident.status == IncidentStatus.ROLLED_BACK:
            return
        escalation = incident.category == IncidentCategory.PAUSE_ESCALATION
        alert_type = AlertType.PAUSE_ESCALATION if escalation else AlertType.INCIDENT_OPENED
        title = f"Incident {incident.category} ({incident.severity}): {incident.title}"
        alert(ctx, event, alert_type, "incidents", title, severity=Severity(incident.severity),
              about=incident.id, details={"category": incident.category,
                                          "incident_title": incident.title})  # fmt: skip

    @handlers.on("run.pause_expiring", name="audit.alert.pause_expiring")
    def pause_expiring(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = (f"Paused run {event.run_id} ({p['reason']}) reaches its SLA deadline at "
                 f"{p['sla_deadline']}")  # fmt: skip
        alert(ctx, event, AlertType.PAUSE_EXPIRING, "control", title,
              severity=Severity.MEDIUM, about=f"{event.run_id}:pause:{p['pause_no']}")  # fmt: skip

    @handlers.on("trace.degraded", name="audit.alert.trace_degraded")
    def trace_degraded(ctx: HandlerContext, event: Event) -> None:
        title = f"Run {event.run_id} goes on without its trace: {event.payload['error']}"
        alert(ctx, event, AlertType.TRACE_DEGRADED, "traces", title)

    @handlers.on("reconciliation.failed", name="audit.alert.reconciliation_failed")
    def reconciliation_failed(ctx: HandlerContext, event: Event) -> None:
        p = event.payload
        title = f"Reconciliation {p.get('workflow_id')} failed: {p.get('error')}"
        alert(ctx, event, AlertType.RECONCILIATION_FAILED, "reconciliation", title,
              about=f"{p.get('workflow_id')}:{p.get('run_id')}")  # fmt: skip

    return handlers


# The causes of run.failed that no incident speaks for, and the severity of their alert
# (workflows.run_workflow: GOVERNANCE_ROLLBACK, CANCELLED).
UNINCIDENTED_FAILURES = {"GOVERNANCE_ROLLBACK": Severity.HIGH, "CANCELLED": Severity.MEDIUM}


def audit_reactor(settings: Settings, sessions: sessionmaker[Session]) -> Reactor:
    """The worker's reactor: the audit handlers, configured from settings."""
    handlers = audit_handlers(default_fatigue(settings)) if settings.audit_alerts_enabled else None
    return Reactor(
        sessions,
        handlers or Handlers(),
        ReactorConfig.from_settings(settings, AUDIT_GROUP),
    )
