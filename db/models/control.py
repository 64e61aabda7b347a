"""Control records: mid-execution policy checks, pauses and stop requests."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class PolicyCheck(Base):
    """The result of one mid-execution policy check."""

    __tablename__ = "policy_checks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    step_index: Mapped[int]
    decision: Mapped[str] = mapped_column(String(20))
    violations: Mapped[list[Any]]
    cost_so_far: Mapped[Decimal]
    checked_at: Mapped[datetime]


class PauseRecord(Base):
    """One pause of a run, from its start to its resolution."""

    __tablename__ = "pause_records"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(30))
    paused_by: Mapped[str] = mapped_column(String(200))
    paused_by_authority: Mapped[str] = mapped_column(String(30))
    paused_at: Mapped[datetime]
    sla_deadline: Mapped[datetime]
    resumable_by: Mapped[list[Any]]
    timeout_behavior: Mapped[str] = mapped_column(String(20))
    warned_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(30))
    resolved_by: Mapped[str | None] = mapped_column(String(200))


class StopRequest(Base):
    """An operator's request that a run stop at its next policy check."""

    __tablename__ = "stop_requests"

    run_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
