"""The idempotency ledger and the runtime audit contract: expectations, acks, ledger."""

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class IdempotencyRecord(Base):
    """The first result of a step, keyed by (workflow id, Temporal run id, step key):
    exactly-once writes within one execution, and no execution ever reads another's."""

    __tablename__ = "idempotency_ledger"

    workflow_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    execution_id: Mapped[str] = mapped_column(String(64), primary_key=True, server_default="")
    step_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(100))
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AuditExpectation(Base):
    """An action a run declared it will perform, due by ``deadline``.

    ``acked_at`` is set in the same transaction as the ack, so the partial index over
    open expectations holds only what is still owed (the stale scan reads that index).
    """

    __tablename__ = "audit_expectations"
    __table_args__ = (
        UniqueConstraint("run_id", "domain", "action"),
        Index(
            "ix_audit_expectations_open_deadline",
            "deadline",
            postgresql_where=text("acked_at IS NULL AND withdrawn_at IS NULL"),
            sqlite_where=text("acked_at IS NULL AND withdrawn_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(100))
    deadline: Mapped[datetime | None]
    created_at: Mapped[datetime]
    acked_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)


class DomainAck(Base):
    """A domain's report that it did (or rolled back) an action for a run."""

    __tablename__ = "domain_acks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    domain: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    result_id: Mapped[str | None] = mapped_column(String(100))
    rolled_back: Mapped[bool] = mapped_column(default=False)
    rollback_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AuditLedgerEntry(Base):
    """An append-only record of a governance-relevant change (run id inside after_state)."""

    __tablename__ = "audit_ledger"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    event_type: Mapped[str] = mapped_column(String(60))
    entity_type: Mapped[str] = mapped_column(String(60))
    entity_id: Mapped[str] = mapped_column(String(100))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_authority: Mapped[str | None] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(60))
    before_state: Mapped[dict[str, Any] | None]
    after_state: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
