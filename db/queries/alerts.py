"""Alerts and suppressed alerts, newest first (shared by the CLI and the HTTP API)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Alert, ReconciliationFinding, SuppressedAlert


def _newest(session: Session, model: type, tenant_id: str | None, limit: int) -> list[Any]:
    stmt = select(model).order_by(model.created_at.desc(), model.id).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(model.tenant_id == tenant_id)
    return list(session.scalars(stmt))


def _common(a: Alert | SuppressedAlert) -> dict[str, Any]:
    """The fields an alert and a suppressed alert share."""
    return {
        "id": a.id,
        "tenant_id": a.tenant_id,
        "alert_type": a.alert_type,
        "severity": a.severity,
        "domain": a.domain,
        "run_id": a.run_id,
        "dedup_key": a.dedup_key,
        "source_event_id": a.source_event_id,
        "created_at": a.created_at.isoformat(),
    }


def list_alerts(session: Session, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts, of one tenant or of all."""
    return [
        {**_common(a), "title": a.title, "details": a.details}
        for a in _newest(session, Alert, tenant_id, limit)
    ]


def list_suppressed(session: Session, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` suppressed alerts with the reason each was held back."""
    return [
        {**_common(a), "reason": a.reason, "detail": a.detail}
        for a in _newest(session, SuppressedAlert, tenant_id, limit)
    ]


def list_findings(
    session: Session, tenant_id: str | None, run_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` reconciliation findings, optionally of one tenant or run."""
    f = ReconciliationFinding
    stmt = select(f).order_by(f.found_at.desc(), f.id).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(f.tenant_id == tenant_id)
    if run_id is not None:
        stmt = stmt.where(f.run_id == run_id)
    return [
        {
            "id": x.id,
            "run_id": x.run_id,
            "tenant_id": x.tenant_id,
            "kind": x.kind,
            "severity": x.severity,
            "domain": x.domain,
            "action": x.action,
            "cause": x.cause,
            "details": x.details,
            "found_at": x.found_at.isoformat(),
        }
        for x in session.scalars(stmt)
    ]
