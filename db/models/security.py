"""Security records: named tenant secrets (encrypted) and a tenant's steps in flight."""

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class TenantSecret(Base):
    """A value an operator stores for a tenant; step inputs reference it by name
    (``${secret:NAME}`` in any string) so that it never enters a workflow history or a
    trace (activities.secret_store substitutes it inside the step)."""

    __tablename__ = "tenant_secrets"

    tenant_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # Fernet token (activities.secret_store)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StepSlot(Base):
    """A step in flight of a tenant: a lease that its heartbeat extends and its end drops."""

    __tablename__ = "step_slots"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    expires_at: Mapped[datetime]
