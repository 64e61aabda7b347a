"""core tables: tenants, runs, transitions, idempotency ledger, audit contract

Revision ID: 0001
Revises: None
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_expectations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_expectations")),
        sa.UniqueConstraint(
            "run_id", "domain", "action", name=op.f("uq_audit_expectations_run_id")
        ),
    )
    with op.batch_alter_table("audit_expectations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_expectations_open_deadline",
            ["deadline"],
            unique=False,
            postgresql_where=sa.text("acked_at IS NULL AND withdrawn_at IS NULL"),
            sqlite_where=sa.text("acked_at IS NULL AND withdrawn_at IS NULL"),
        )
    op.create_table(
        "audit_ledger",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("entity_type", sa.String(length=60), nullable=False),
        sa.Column("entity_id", sa.String(length=100), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=False),
        sa.Column("actor_authority", sa.String(length=30), nullable=True),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column(
            "before_state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "after_state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_ledger")),
    )
    with op.batch_alter_table("audit_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_ledger_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "domain_acks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result_id", sa.String(length=100), nullable=True),
        sa.Column("rolled_back", sa.Boolean(), nullable=False),
        sa.Column("rollback_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domain_acks")),
    )
    with op.batch_alter_table("domain_acks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domain_acks_run_id"), ["run_id"], unique=False)
    op.create_table(
        "idempotency_ledger",
        sa.Column("workflow_id", sa.String(length=120), nullable=False),
        sa.Column("step_key", sa.String(length=200), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "step_key", name=op.f("pk_idempotency_ledger")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("workflow_id", sa.String(length=120), nullable=False),
        sa.Column("phase", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("steps_total", sa.Integer(), nullable=False),
        sa.Column("steps_done", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("budget", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("authorization_decision", sa.String(length=20), nullable=True),
        sa.Column("authorization_reason", sa.Text(), nullable=True),
        sa.Column("limits_version_at_start", sa.Integer(), nullable=True),
        sa.Column("policy_version_at_start", sa.Integer(), nullable=True),
        sa.Column("observability_status", sa.String(length=20), nullable=False),
        sa.Column("observability_error", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.UniqueConstraint("workflow_id", name=op.f("uq_runs_workflow_id")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_tenant_status", ["tenant_id", "status"], unique=False)
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("budget_limit", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column(
            "allowed_skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("limits_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "run_phase_transitions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_phase", sa.String(length=30), nullable=True),
        sa.Column("to_phase", sa.String(length=30), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_run_phase_transitions_run_id_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_phase_transitions")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_run_phase_transitions_run_id")),
    )
    with op.batch_alter_table("run_phase_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_run_phase_transitions_run_id"), ["run_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("run_phase_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_phase_transitions_run_id"))
    op.drop_table("run_phase_transitions")
    op.drop_table("tenants")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_tenant_status")
    op.drop_table("runs")
    op.drop_table("idempotency_ledger")
    with op.batch_alter_table("domain_acks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domain_acks_run_id"))
    op.drop_table("domain_acks")
    with op.batch_alter_table("audit_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_ledger_tenant_id"))
    op.drop_table("audit_ledger")
    with op.batch_alter_table("audit_expectations", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_audit_expectations_open_deadline",
            postgresql_where=sa.text("acked_at IS NULL AND withdrawn_at IS NULL"),
            sqlite_where=sa.text("acked_at IS NULL AND withdrawn_at IS NULL"),
        )
    op.drop_table("audit_expectations")
