"""control tables: policy checks, pause records, stop requests

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pause_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("paused_by", sa.String(length=200), nullable=False),
        sa.Column("paused_by_authority", sa.String(length=30), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "resumable_by",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("timeout_behavior", sa.String(length=20), nullable=False),
        sa.Column("warned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=30), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pause_records")),
    )
    with op.batch_alter_table("pause_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pause_records_run_id"), ["run_id"], unique=False)
    op.create_table(
        "policy_checks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column(
            "violations",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cost_so_far", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_checks")),
    )
    with op.batch_alter_table("policy_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_checks_run_id"), ["run_id"], unique=False)
    op.create_table(
        "stop_requests",
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_stop_requests")),
    )


def downgrade() -> None:
    op.drop_table("stop_requests")
    with op.batch_alter_table("policy_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_checks_run_id"))
    op.drop_table("policy_checks")
    with op.batch_alter_table("pause_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pause_records_run_id"))
    op.drop_table("pause_records")
