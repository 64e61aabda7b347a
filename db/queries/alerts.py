"""Alerts and suppressed alerts, newest first (shared by the CLI and the HTTP API)."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Alert, ReconciliationFinding, SuppressedAlert


def list_alerts(session: Session, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts, of one tenant or of all."""
    stmt = select(Alert).order_by(Alert.created_at.desc(), Alert.id).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(Alert.tenant_id == tenant_id)
    return [
        {
            "id": a.id,
            "tenant_id": a.tenant_id,
            "alert_type": a.alert_type,
            "severity": a.severity,
            "domain": a.domain,
            "run_id": a.run_id,
            "title": a.title,
            "dedup_key": a.dedup_key,
            "details": a.details,
            "source_event_id": a.source_event_id,
            "created_at": a.created_at.isoformat(),
        }
        for a in session.scalars(stmt)
    ]


def list_suppressed(session: Session, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` suppressed alerts with the reason each was held back."""
    s = SuppressedAlert
    stmt = select(s).order_by(s.created_at.desc(), s.id).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(s.tenant_id == tenant_id)
    return [
        {
            "id": a.id,
            "tenant_id": a.tenant_id,
            "alert_type": a.alert_type,
            "severity": a.severity,
            "domain": a.domain,
            "run_id": a.run_id,
            "reason": a.reason,
            "detail": a.detail,
            "dedup_key": a.dedup_key,
            "source_event_id": a.source_event_id,
            "created_at": a.created_at.isoformat(),
        }
        for a in session.scalars(stmt)
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
