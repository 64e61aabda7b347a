"""incident lifecycle: acknowledged and resolved, each with who, when and a note

- ``incidents.acknowledged_at``, ``acknowledged_by``, ``acknowledgement_note``: OPEN →
  ACKNOWLEDGED.
- ``incidents.resolved_at``, ``resolved_by``, ``resolution_note``: OPEN or ACKNOWLEDGED →
  RESOLVED.
- ``ix_incidents_tenant_created``: a tenant's incidents, newest first.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("acknowledged_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("acknowledgement_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("resolution_note", sa.Text(), nullable=True))
        batch.create_index("ix_incidents_tenant_created", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    # The statuses stay as they are (0008's code reads any status but ROLLED_BACK as live).
    with op.batch_alter_table("incidents", schema=None) as batch:
        batch.drop_index("ix_incidents_tenant_created")
        batch.drop_column("resolution_note")
        batch.drop_column("resolved_by")
        batch.drop_column("resolved_at")
        batch.drop_column("acknowledgement_note")
        batch.drop_column("acknowledged_by")
        batch.drop_column("acknowledged_at")
