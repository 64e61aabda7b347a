"""Claim-check blobs: the large Temporal payloads kept out of workflow histories."""

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base


class PayloadBlob(Base):
    """One serialized Temporal payload (``temporalio.api.common.v1.Payload``) larger than
    CLAIM_CHECK_THRESHOLD_BYTES, keyed by the sha256 of its bytes (runtime.claim_check): a
    history holds the key and the size only. Content-addressed, so the same payload stored
    twice is one row. ``last_used_at`` moves forward when the payload is stored or read
    again (at most once a day, services.payload_blobs); retention purges by it."""

    __tablename__ = "payload_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex, of ``data``
    data: Mapped[bytes] = mapped_column(LargeBinary)  # encrypted when the codec encrypts
    size: Mapped[int] = mapped_column(Integer)  # len(data)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime] = mapped_column(index=True)
