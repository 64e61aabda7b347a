"""API keys of the HTTP API: only the sha256 of a key is stored, never the key itself."""

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class ApiKey(Base):
    """A key that acts for one tenant with one authority (domain.enums.Authority)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str] = mapped_column(String(100), index=True)
    authority: Mapped[str] = mapped_column(String(30))
    name: Mapped[str] = mapped_column(String(200))
    # The promotion authority the key acts with (domain.enums AuthorityType); null: the
    # operator's mapping from ``authority`` (settings PROMOTION_AUTHORITIES).
    promotion_authority: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
