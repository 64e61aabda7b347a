"""Traces and their hash-chained steps."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class Trace(Base):
    """The trace of one run; completion stores the head hash and step count."""

    __tablename__ = "traces"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    head_hash: Mapped[str | None] = mapped_column(String(64))
    step_count: Mapped[int | None]
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class TraceStep(Base):
    """One executed step; ``hash`` = sha256(prev_hash + canonical content)."""

    __tablename__ = "trace_steps"
    __table_args__ = (UniqueConstraint("trace_id", "step_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trace_id: Mapped[str] = mapped_column(ForeignKey("traces.id"))
    run_id: Mapped[str] = mapped_column(String(100), index=True)
    step_index: Mapped[int]
    skill: Mapped[str] = mapped_column(String(50))
    input: Mapped[dict[str, Any]]
    output: Mapped[dict[str, Any]]
    cost: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
