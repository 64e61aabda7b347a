"""Incidents, newest first, with their lifecycle (shared by the CLI and the HTTP API)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Incident
from domain.incidents import IncidentView


def incident_view(i: Incident) -> IncidentView:
    return IncidentView(
        id=i.id,
        tenant_id=i.tenant_id,
        source_run_id=i.source_run_id,
        category=i.category,
        severity=i.severity,
        status=i.status,
        title=i.title,
        description=i.description,
        details=i.details,
        created_at=i.created_at,
        acknowledged_at=i.acknowledged_at,
        acknowledged_by=i.acknowledged_by,
        acknowledgement_note=i.acknowledgement_note,
        resolved_at=i.resolved_at,
        resolved_by=i.resolved_by,
        resolution_note=i.resolution_note,
        rolled_back_at=i.rolled_back_at,
        rollback_reason=i.rollback_reason,
    )


def list_incidents(
    session: Session,
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    severity: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
) -> list[IncidentView]:
    """The newest ``limit`` incidents, each filter applied when given."""
    stmt = select(Incident).order_by(Incident.created_at.desc(), Incident.id).limit(limit)
    filters = (
        (Incident.tenant_id, tenant_id),
        (Incident.status, status),
        (Incident.severity, severity),
        (Incident.source_run_id, run_id),
    )
    for column, value in filters:
        if value is not None:
            stmt = stmt.where(column == value)
    return [incident_view(i) for i in session.scalars(stmt)]
