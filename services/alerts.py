"""Raising alerts through the fatigue controls, and the per-tenant alert settings.

``raise_alert`` runs inside the caller's transaction (a reactor delivery): it reads the
tenant's settings and the alerts it was sent recently, asks domain.alert_fatigue, and
writes either an Alert or a SuppressedAlert with the reason. Ids are derived from the
source event, so the same event can never yield two alerts. An alert sent is also an
``alert.raised`` outbox event, in the same transaction: the tenant's alert sinks get it
from there (events.notifications); a suppressed one goes nowhere. The one writer of
``alerts``, ``suppressed_alerts`` and ``tenant_alert_settings`` (expired suppression
records go with ``delete_suppressed``; the alerts sent are kept).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Alert, SuppressedAlert, TenantAlertSettings
from domain.alert_fatigue import (
    AlertType,
    Candidate,
    Decision,
    FatigueSettings,
    SentAlert,
    TenantOverrides,
    check_alert,
    effective_settings,
)
from domain.enums import Severity
from domain.ids import derive_id
from domain.sink_messages import AlertMessage
from domain.sinks import ALERT_RAISED
from observability import metrics
from services import events
from services.ledger import UNSYNCED, utcnow


@dataclass(frozen=True)
class AlertSpec:
    tenant_id: str
    alert_type: AlertType
    severity: Severity
    domain: str
    run_id: str | None
    dedup_key: str
    title: str
    details: dict[str, Any]
    source_event_id: str


def tenant_settings(session: Session, tenant_id: str, defaults: FatigueSettings) -> FatigueSettings:
    row = session.get(TenantAlertSettings, tenant_id)
    own = None
    if row is not None:
        own = TenantOverrides(
            alerts_enabled=row.alerts_enabled,
            max_alerts_per_hour=row.max_alerts_per_hour,
            dedup_window_seconds=row.dedup_window_seconds,
            domain_cooldowns={k: int(v) for k, v in row.domain_cooldowns.items()},
        )
    return effective_settings(defaults, own)


def raise_alert(
    session: Session, defaults: FatigueSettings, spec: AlertSpec, now: datetime
) -> Decision:
    """Write the alert, or its suppression record; return the decision."""
    settings = tenant_settings(session, spec.tenant_id, defaults)
    recent = session.execute(
        select(Alert.dedup_key, Alert.domain, Alert.created_at).where(
            Alert.tenant_id == spec.tenant_id, Alert.created_at >= now - settings.horizon()
        )
    )
    sent = [SentAlert(key, domain, at) for key, domain, at in recent]
    candidate = Candidate(spec.alert_type, spec.domain, spec.dedup_key)
    decision = check_alert(candidate, settings, sent, now)
    common = {
        "id": derive_id("alert", spec.source_event_id, spec.alert_type, spec.dedup_key),
        "tenant_id": spec.tenant_id,
        "alert_type": spec.alert_type,
        "severity": spec.severity,
        "domain": spec.domain,
        "run_id": spec.run_id,
        "dedup_key": spec.dedup_key,
        "source_event_id": spec.source_event_id,
        "created_at": now,
    }
    if decision.send:
        session.add(Alert(**common, title=spec.title, details=spec.details))
        message = AlertMessage(common["id"], spec.tenant_id, spec.alert_type, spec.severity,
                               spec.domain, spec.run_id, spec.title, spec.details,
                               now.isoformat())  # fmt: skip
        events.emit(session, key=f"alert/{message.id}", topic=ALERT_RAISED,
                    tenant_id=spec.tenant_id, run_id=spec.run_id,
                    payload={"alert": message.to_dict()})  # fmt: skip
        metrics.record_alert_sent(spec.tenant_id, spec.alert_type)
    else:
        session.add(SuppressedAlert(**common, reason=decision.reason, detail=decision.detail))
        metrics.record_alert_suppressed(spec.tenant_id, spec.alert_type, decision.reason)
    session.flush()
    return decision


def save_tenant_settings(
    sessions: sessionmaker[Session],
    tenant_id: str,
    *,
    alerts_enabled: bool | None = None,
    max_alerts_per_hour: int | None = None,
    dedup_window_seconds: int | None = None,
    domain_cooldowns: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Create or change a tenant's alert settings; unset arguments keep their value. A
    negative value is refused (ValueError) and nothing is written."""
    for name, value in (
        ("max_alerts_per_hour", max_alerts_per_hour),
        ("dedup_window_seconds", dedup_window_seconds),
        *((f"domain_cooldowns[{k}]", v) for k, v in (domain_cooldowns or {}).items()),
    ):
        if value is not None and value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
    with sessions.begin() as session:
        row = session.get(TenantAlertSettings, tenant_id)
        if row is None:
            row = TenantAlertSettings(tenant_id=tenant_id, alerts_enabled=True, domain_cooldowns={})
            session.add(row)
        if alerts_enabled is not None:
            row.alerts_enabled = alerts_enabled
        if max_alerts_per_hour is not None:
            row.max_alerts_per_hour = max_alerts_per_hour
        if dedup_window_seconds is not None:
            row.dedup_window_seconds = dedup_window_seconds
        if domain_cooldowns:
            row.domain_cooldowns = {**row.domain_cooldowns, **domain_cooldowns}
        row.updated_at = utcnow()
        return {
            "tenant_id": tenant_id,
            "alerts_enabled": row.alerts_enabled,
            "max_alerts_per_hour": row.max_alerts_per_hour,
            "dedup_window_seconds": row.dedup_window_seconds,
            "domain_cooldowns": row.domain_cooldowns,
        }


def delete_suppressed(session: Session, ids: list[str]) -> int:
    """Delete these suppression records (expired: services.retention) in the caller's
    transaction; returns how many went. Nothing reads them back: the fatigue controls look
    at the alerts sent."""
    if not ids:
        return 0
    stmt = delete(SuppressedAlert).where(SuppressedAlert.id.in_(ids))
    return session.execute(stmt, execution_options=UNSYNCED).rowcount
