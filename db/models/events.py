"""The transactional outbox: events written in the same transaction as their cause."""

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class OutboxEvent(Base):
    """An event to deliver at least once to the handlers of its topic."""

    __tablename__ = "outbox_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    topic: Mapped[str] = mapped_column(String(60), index=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    run_id: Mapped[str | None] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(index=True)
