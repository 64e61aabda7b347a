"""Incidents and policies: rules, evaluations, prevention records, limit breaches."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Incident(Base):
    """An incident; ``source_run_id`` links it to the run that caused it. Its lifecycle
    (domain.incidents): OPEN → ACKNOWLEDGED → RESOLVED, each change with who, when and a
    note; ROLLED_BACK when its run compensates."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    source_run_id: Mapped[str | None] = mapped_column(String(100), index=True)
    category: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="OPEN")
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    rolled_back_at: Mapped[datetime | None]
    rollback_reason: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledgement_note: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)


class PolicyRule(Base):
    """A tenant's policy rule: what it looks at (kind, params) and what a match means."""

    __tablename__ = "policy_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    params: Mapped[dict[str, Any]]
    outcome: Mapped[str] = mapped_column(String(20))
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime]


class PolicyEvaluation(Base):
    """The policy evaluation of one run (one per run)."""

    __tablename__ = "policy_evaluations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="COMMITTED")
    facts: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    rolled_back_at: Mapped[datetime | None]
    rollback_reason: Mapped[str | None] = mapped_column(Text)


class PreventionRecord(Base):
    """A policy rule that matched a run: PREVENTED, BLOCKED or WARNED — in the run's final
    evaluation (``evaluation_id``), or before a step (``step_index``; no evaluation)."""

    __tablename__ = "prevention_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    evaluation_id: Mapped[str | None] = mapped_column(
        ForeignKey("policy_evaluations.id"), index=True
    )
    step_index: Mapped[int | None]
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    rule_id: Mapped[str | None] = mapped_column(String(36))
    rule_name: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="COMMITTED")
    created_at: Mapped[datetime]
    rolled_back_at: Mapped[datetime | None]


class LimitBreach(Base):
    """A limit a run went past, with the value reached and the threshold."""

    __tablename__ = "limit_breaches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    evaluation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    limit_type: Mapped[str] = mapped_column(String(40))
    value: Mapped[Decimal]
    threshold: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20), default="COMMITTED")
    created_at: Mapped[datetime]
    rolled_back_at: Mapped[datetime | None]
