"""prevention: tenant governance settings, prevention records before a step

- ``tenants.governance``: the tenant's governance settings and who may loosen them
  (domain.governance.TenantGovernance); a run's options may only tighten them.
- ``prevention_records.step_index``: a rule (or the budget) judged before a step; such a
  record belongs to no evaluation, so ``evaluation_id`` may be null.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch:
        batch.add_column(sa.Column("governance", JSONType, nullable=True))
    with op.batch_alter_table("prevention_records", schema=None) as batch:
        batch.add_column(sa.Column("step_index", sa.Integer(), nullable=True))
        batch.alter_column("evaluation_id", existing_type=sa.String(length=36), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM prevention_records WHERE evaluation_id IS NULL")
    with op.batch_alter_table("prevention_records", schema=None) as batch:
        batch.alter_column("evaluation_id", existing_type=sa.String(length=36), nullable=False)
        batch.drop_column("step_index")
    with op.batch_alter_table("tenants", schema=None) as batch:
        batch.drop_column("governance")
