"""security: one execution per run id, tenant limits, egress allow-lists, secrets

Merges the three heads (candidates, reconciliation, api keys).

- ``idempotency_ledger`` is keyed by (workflow id, Temporal run id, step key) and carries
  the tenant: no execution can read another execution's recorded results.
- ``runs.execution_id``: the Temporal run id of the execution that opened the run; any
  other execution with the same workflow id is refused at open.
- ``tenants``: egress allow-list, promotion policies allowed, signal-count bound, runs and
  steps in flight.
- ``api_keys.promotion_authority``: the promotion authority a key acts with.
- ``tenant_secrets``: named secrets (encrypted) that step inputs may reference.
- ``step_slots``: a tenant's steps in flight (leases).

Revision ID: 0007
Revises: 0004, 0005, 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)

revision: str = "0007"
down_revision: str | Sequence[str] | None = ("0004", "0005", "0006")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_ledger", schema=None, recreate="always") as batch:
        batch.add_column(
            sa.Column("execution_id", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("tenant_id", sa.String(length=100), nullable=True))
        batch.drop_constraint("pk_idempotency_ledger", type_="primary")
        batch.create_primary_key(
            "pk_idempotency_ledger", ["workflow_id", "execution_id", "step_key"]
        )
    with op.batch_alter_table("runs", schema=None) as batch:
        batch.add_column(sa.Column("execution_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch:
        batch.add_column(sa.Column("egress_allow", JSONType, nullable=True))
        batch.add_column(sa.Column("promotion_policies", JSONType, nullable=True))
        batch.add_column(sa.Column("max_signal_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_runs_in_flight", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_steps_in_flight", sa.Integer(), nullable=True))
    with op.batch_alter_table("api_keys", schema=None) as batch:
        batch.add_column(sa.Column("promotion_authority", sa.String(length=30), nullable=True))
    op.create_table(
        "tenant_secrets",
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name", name=op.f("pk_tenant_secrets")),
    )
    op.create_table(
        "step_slots",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_slots")),
    )
    with op.batch_alter_table("step_slots", schema=None) as batch:
        batch.create_index(batch.f("ix_step_slots_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("step_slots", schema=None) as batch:
        batch.drop_index(batch.f("ix_step_slots_tenant_id"))
    op.drop_table("step_slots")
    op.drop_table("tenant_secrets")
    with op.batch_alter_table("api_keys", schema=None) as batch:
        batch.drop_column("promotion_authority")
    with op.batch_alter_table("tenants", schema=None) as batch:
        for column in (
            "max_steps_in_flight",
            "max_runs_in_flight",
            "max_signal_count",
            "promotion_policies",
            "egress_allow",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("runs", schema=None) as batch:
        batch.drop_column("execution_id")
    op.execute("DELETE FROM idempotency_ledger WHERE execution_id <> ''")
    with op.batch_alter_table("idempotency_ledger", schema=None, recreate="always") as batch:
        batch.drop_constraint("pk_idempotency_ledger", type_="primary")
        batch.create_primary_key("pk_idempotency_ledger", ["workflow_id", "step_key"])
        batch.drop_column("tenant_id")
        batch.drop_column("execution_id")
