"""Alert sinks and their delivery attempts as the CLI and the HTTP API show them: never a
secret (the URL shows as its origin, the signing secret and the SMTP password not at all)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AlertSink, AlertSinkAttempt


class SinkView(BaseModel):
    """A sink: what it receives, where it sends (no secret), and its health."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant_id: str
    name: str
    kind: str
    min_severity: str
    alert_types: list[str] | None
    settings: dict[str, Any]
    healthy: bool
    consecutive_failures: int
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptView(BaseModel):
    """One delivery attempt: which alert to which sink, how it ended, when."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant_id: str
    sink_id: str
    sink_name: str
    sink_kind: str
    alert_id: str
    alert_type: str
    delivery_id: str
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


def sink_view(row: AlertSink) -> SinkView:
    return SinkView.model_validate({name: getattr(row, name) for name in SinkView.model_fields})


def list_sinks(session: Session, tenant_id: str) -> list[SinkView]:
    rows = session.scalars(
        select(AlertSink).where(AlertSink.tenant_id == tenant_id).order_by(AlertSink.name)
    )
    return [sink_view(row) for row in rows]


def list_attempts(
    session: Session, tenant_id: str | None, sink_name: str | None, limit: int
) -> list[AttemptView]:
    """The newest ``limit`` attempts, of one tenant (and one of its sinks) or of all."""
    a = AlertSinkAttempt
    stmt = select(a).order_by(a.attempted_at.desc(), a.attempt.desc(), a.id).limit(limit)
    if tenant_id is not None:
        stmt = stmt.where(a.tenant_id == tenant_id)
    if sink_name is not None:
        stmt = stmt.where(a.sink_name == sink_name)
    return [
        AttemptView.model_validate({name: getattr(row, name) for name in AttemptView.model_fields})
        for row in session.scalars(stmt)
    ]
