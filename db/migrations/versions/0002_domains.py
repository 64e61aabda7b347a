"""domain tables: incidents, policies, traces, outbox

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("source_run_id", sa.String(length=100), nullable=True),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incidents_source_run_id"), ["source_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "limit_breaches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=True),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("limit_type", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("threshold", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_breaches")),
    )
    with op.batch_alter_table("limit_breaches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_limit_breaches_evaluation_id"), ["evaluation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_limit_breaches_run_id"), ["run_id"], unique=False)
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_events_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbox_events_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_events_topic"), ["topic"], unique=False)
    op.create_table(
        "policy_evaluations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "facts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_evaluations")),
        sa.UniqueConstraint("run_id", name=op.f("uq_policy_evaluations_run_id")),
    )
    op.create_table(
        "policy_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_rules")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_policy_rules_tenant_id")),
    )
    with op.batch_alter_table("policy_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_rules_tenant_id"), ["tenant_id"], unique=False)
    op.create_table(
        "traces",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=True),
        sa.Column("step_count", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traces")),
        sa.UniqueConstraint("run_id", name=op.f("uq_traces_run_id")),
    )
    op.create_table(
        "prevention_records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("evaluation_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("rule_id", sa.String(length=36), nullable=True),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["evaluation_id"],
            ["policy_evaluations.id"],
            name=op.f("fk_prevention_records_evaluation_id_policy_evaluations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prevention_records")),
    )
    with op.batch_alter_table("prevention_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prevention_records_evaluation_id"), ["evaluation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_prevention_records_run_id"), ["run_id"], unique=False)
    op.create_table(
        "trace_steps",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("trace_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=50), nullable=False),
        sa.Column(
            "input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("cost", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.id"], name=op.f("fk_trace_steps_trace_id_traces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_steps")),
        sa.UniqueConstraint("trace_id", "step_index", name=op.f("uq_trace_steps_trace_id")),
    )
    with op.batch_alter_table("trace_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_steps_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trace_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_steps_run_id"))
    op.drop_table("trace_steps")
    with op.batch_alter_table("prevention_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prevention_records_run_id"))
        batch_op.drop_index(batch_op.f("ix_prevention_records_evaluation_id"))
    op.drop_table("prevention_records")
    op.drop_table("traces")
    with op.batch_alter_table("policy_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_rules_tenant_id"))
    op.drop_table("policy_rules")
    op.drop_table("policy_evaluations")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_events_topic"))
        batch_op.drop_index(batch_op.f("ix_outbox_events_run_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_events_created_at"))
    op.drop_table("outbox_events")
    with op.batch_alter_table("limit_breaches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_limit_breaches_run_id"))
        batch_op.drop_index(batch_op.f("ix_limit_breaches_evaluation_id"))
    op.drop_table("limit_breaches")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_incidents_source_run_id"))
    op.drop_table("incidents")
