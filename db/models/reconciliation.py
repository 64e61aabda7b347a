"""Reconciliation findings, alerts (sent and suppressed), and outbox event deliveries."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.audit import DomainAck, IdempotencyRecord
from db.models.base import Base

# The scan for acks nobody expected pages through recent acks by creation time.
Index("ix_domain_acks_created_at", DomainAck.created_at)


class ReconciliationFinding(Base):
    """One thing the scheduled reconciliation found about a run (id derived: written once)."""

    __tablename__ = "reconciliation_findings"
    __table_args__ = (Index("ix_reconciliation_findings_tenant_found", "tenant_id", "found_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    domain: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(100))
    cause: Mapped[str | None] = mapped_column(Text)  # "workflow TERMINATED at … without finalizing"
    details: Mapped[dict[str, Any]]
    reconciliation_id: Mapped[str] = mapped_column(String(200))
    found_at: Mapped[datetime]


class Alert(Base):
    """An alert that passed the fatigue controls."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    alert_type: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    domain: Mapped[str] = mapped_column(String(50))
    run_id: Mapped[str | None] = mapped_column(String(100), index=True)
    dedup_key: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    source_event_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime]


class SuppressedAlert(Base):
    """An alert the fatigue controls held back, with the reason."""

    __tablename__ = "suppressed_alerts"
    __table_args__ = (Index("ix_suppressed_alerts_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    alert_type: Mapped[str] = mapped_column(String(30))
    severity: Mapped[str] = mapped_column(String(10))
    domain: Mapped[str] = mapped_column(String(50))
    run_id: Mapped[str | None] = mapped_column(String(100))
    dedup_key: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(Text)
    source_event_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime]


class TenantAlertSettings(Base):
    """A tenant's own alert settings; NULL columns take the worker's defaults."""

    __tablename__ = "tenant_alert_settings"

    tenant_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    alerts_enabled: Mapped[bool] = mapped_column(default=True)
    max_alerts_per_hour: Mapped[int | None]
    dedup_window_seconds: Mapped[int | None]
    domain_cooldowns: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class EventDelivery(Base):
    """One outbox event for one handler: delivered once the handler's transaction commits."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        Index(
            "ix_event_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL"),
        ),
    )

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    handler: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(60))
    event_created_at: Mapped[datetime]
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None] = mapped_column(index=True)
    latency_ms: Mapped[int | None]


class EventCursor(Base):
    """How far a reactor group has read the outbox (keyset: created_at, id)."""

    __tablename__ = "event_cursors"

    group_name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position_at: Mapped[datetime]
    position_id: Mapped[str] = mapped_column(String(36))
    swept_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ReactorHeartbeat(Base):
    """The last sign of life of one reactor process (stale beat: unhealthy reactor)."""

    __tablename__ = "reactor_heartbeats"

    reactor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    group_name: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    delivered: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


# Retention (services.retention) purges by age, oldest first: its cost grows with the
# expired rows, not with all rows (outbox_events.created_at is indexed already).
Index("ix_reconciliation_findings_found_at", ReconciliationFinding.found_at)
Index("ix_suppressed_alerts_created_at", SuppressedAlert.created_at)
Index("ix_idempotency_ledger_created_at", IdempotencyRecord.created_at)
