"""Tenants, runs and their phase transitions."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Tenant(Base):
    """A tenant: its status, budget limit and allowed skills (null = every skill), and the
    security settings an operator sets for it (null = the worker's default)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="ACTIVE")
    budget_limit: Mapped[Decimal | None]
    allowed_skills: Mapped[list[Any] | None]
    limits_version: Mapped[int] = mapped_column(default=1)
    # Egress allow-list of outbound skill calls: [{"scheme", "host", "port"}] (domain.egress).
    egress_allow: Mapped[list[Any] | None]
    promotion_policies: Mapped[list[Any] | None]  # policy ids a submitter may name
    max_signal_count: Mapped[int | None]
    max_runs_in_flight: Mapped[int | None]
    max_steps_in_flight: Mapped[int | None]
    # Governance settings (domain.governance.TenantGovernance): the tenant decides, a run's
    # options may only tighten them; null = the worker's defaults, nothing loosened.
    governance: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# A run whose row is still open; the reconciliation's cross-check reads it through the
# partial index below (db.queries.stale.open_runs_statement spells it the same way).
OPEN_RUN = "phase NOT IN ('COMPLETED', 'FAILED')"


class Run(Base):
    """One governed run; Temporal owns its lifecycle, this row mirrors it."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_tenant_status", "tenant_id", "status"),
        Index(
            "ix_runs_open_created",
            "created_at",
            "id",
            postgresql_where=text(OPEN_RUN),
            sqlite_where=text(OPEN_RUN),
        ),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    workflow_id: Mapped[str] = mapped_column(String(120), unique=True)
    # The Temporal run id of the execution that opened this run: the only one that owns it.
    execution_id: Mapped[str | None] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    steps_total: Mapped[int]
    steps_done: Mapped[int] = mapped_column(default=0)
    cost: Mapped[Decimal] = mapped_column(default=Decimal(0))
    budget: Mapped[Decimal | None]
    authorization_decision: Mapped[str | None] = mapped_column(String(20))
    authorization_reason: Mapped[str | None] = mapped_column(Text)
    limits_version_at_start: Mapped[int | None]
    policy_version_at_start: Mapped[int | None]
    observability_status: Mapped[str] = mapped_column(String(20), default="OK")
    observability_error: Mapped[str | None] = mapped_column(Text)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finalized_at: Mapped[datetime | None]


class RunPhaseTransition(Base):
    """Every phase change of a run, in order."""

    __tablename__ = "run_phase_transitions"
    __table_args__ = (UniqueConstraint("run_id", "seq"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    seq: Mapped[int]
    from_phase: Mapped[str | None] = mapped_column(String(30))
    to_phase: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
