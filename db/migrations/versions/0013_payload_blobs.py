"""payload blobs: the claim check's store of large Temporal payloads

``payload_blobs``: a serialized payload larger than CLAIM_CHECK_THRESHOLD_BYTES, keyed by
the sha256 of its bytes (runtime.claim_check, written by services.payload_blobs); workflow
histories hold the key and the size. ``ix_payload_blobs_last_used_at``: retention purges
the blobs unused for RETENTION_PAYLOAD_BLOBS_SECONDS, oldest first, a page at a time.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UTCDateTime = sa.DateTime(timezone=True)

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payload_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_payload_blobs")),
    )
    with op.batch_alter_table("payload_blobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payload_blobs_last_used_at"), ["last_used_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payload_blobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payload_blobs_last_used_at"))
    op.drop_table("payload_blobs")
