"""Alert sinks a tenant configures, and every attempt to deliver an alert to one."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class AlertSink(Base):
    """Where a tenant's alerts go (domain.sinks): a webhook, a Slack webhook or an e-mail
    address list. ``settings`` is what may be shown; the URL, the signing secret and the
    SMTP password are in ``ciphertext`` (a Fernet token, activities.secret_store)."""

    __tablename__ = "alert_sinks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    min_severity: Mapped[str] = mapped_column(String(10))
    alert_types: Mapped[list[Any] | None]
    settings: Mapped[dict[str, Any]]
    ciphertext: Mapped[str] = mapped_column(Text)
    healthy: Mapped[bool] = mapped_column(default=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_attempt_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertSinkAttempt(Base):
    """One attempt to deliver one alert to one sink (or a test message), and how it ended."""

    __tablename__ = "alert_sink_attempts"
    __table_args__ = (
        Index("ix_alert_sink_attempts_tenant_attempted", "tenant_id", "attempted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    sink_id: Mapped[str] = mapped_column(String(36), index=True)
    sink_name: Mapped[str] = mapped_column(String(100))
    sink_kind: Mapped[str] = mapped_column(String(20))
    alert_id: Mapped[str] = mapped_column(String(36))
    alert_type: Mapped[str] = mapped_column(String(30))
    delivery_id: Mapped[str] = mapped_column(String(36))
    attempt: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int]
    attempted_at: Mapped[datetime]
