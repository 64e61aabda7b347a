"""Incident candidates: the candidate store, promotion decisions, the orchestration log."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base

# Locked decision: orchestration-log rows are observability only and expire after 90 days.
ORCHESTRATION_LOG_RETENTION = timedelta(days=90)


class Candidate(Base):
    """A correlated incident candidate; its facts never change once stored."""

    __tablename__ = "candidates"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    correlation_rule_id: Mapped[str] = mapped_column(String(100))
    correlation_rule_version: Mapped[str] = mapped_column(String(40))
    signal_count: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(20))
    service: Mapped[str] = mapped_column(String(200))
    source_run_id: Mapped[str | None] = mapped_column(String(100), index=True)
    # "metadata" is reserved on declarative classes: the attribute is ``meta``.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata")
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    decision_id: Mapped[str | None] = mapped_column(String(36))
    incident_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime]
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PromotionDecisionRecord(Base):
    """A promotion decision applied to a candidate; the id is the engine's decision id."""

    __tablename__ = "promotion_decisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    policy_id: Mapped[str] = mapped_column(String(100))
    policy_version: Mapped[str] = mapped_column(String(40))
    authority_type: Mapped[str] = mapped_column(String(30))
    authority_id: Mapped[str] = mapped_column(String(200))
    session_id: Mapped[str] = mapped_column(String(200))
    justification: Mapped[str] = mapped_column(Text)
    context_hash: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[str | None] = mapped_column(String(36))
    workflow_id: Mapped[str] = mapped_column(String(120))
    workflow_run_id: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime]


class OrchestrationAttempt(Base):
    """One orchestration attempt: write-only, never read on the hot path, expires."""

    __tablename__ = "candidate_orchestration_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(String(100), index=True)
    workflow_id: Mapped[str] = mapped_column(String(120))
    workflow_run_id: Mapped[str] = mapped_column(String(64))
    authority_type: Mapped[str] = mapped_column(String(30))
    authority_id: Mapped[str] = mapped_column(String(200))
    policy_id: Mapped[str | None] = mapped_column(String(100))
    policy_version: Mapped[str | None] = mapped_column(String(40))
    decision: Mapped[str | None] = mapped_column(String(20))
    decision_id: Mapped[str | None] = mapped_column(String(36))
    incident_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    written_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
