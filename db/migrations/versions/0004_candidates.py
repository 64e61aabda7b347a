"""incident candidates: candidate store, promotion decisions, orchestration log

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "candidates",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("correlation_rule_id", sa.String(length=100), nullable=False),
        sa.Column("correlation_rule_version", sa.String(length=40), nullable=False),
        sa.Column("signal_count", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("source_run_id", sa.String(length=100), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=True),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        _ts("created_at"),
        _ts("submitted_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
    )
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_candidates_source_run_id"), ["source_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_candidates_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_candidates_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "promotion_decisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("authority_type", sa.String(length=30), nullable=False),
        sa.Column("authority_id", sa.String(length=200), nullable=False),
        sa.Column("session_id", sa.String(length=200), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("context_hash", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("workflow_id", sa.String(length=120), nullable=False),
        sa.Column("workflow_run_id", sa.String(length=64), nullable=False),
        _ts("decided_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_decisions")),
    )
    with op.batch_alter_table("promotion_decisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_promotion_decisions_candidate_id"), ["candidate_id"], unique=False
        )

    op.create_table(
        "candidate_orchestration_log",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("candidate_id", sa.String(length=100), nullable=False),
        sa.Column("workflow_id", sa.String(length=120), nullable=False),
        sa.Column("workflow_run_id", sa.String(length=64), nullable=False),
        sa.Column("authority_type", sa.String(length=30), nullable=False),
        sa.Column("authority_id", sa.String(length=200), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=True),
        sa.Column("policy_version", sa.String(length=40), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("decision_id", sa.String(length=36), nullable=True),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("started_at"),
        _ts("completed_at"),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _ts("written_at"),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidate_orchestration_log")),
    )
    with op.batch_alter_table("candidate_orchestration_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_candidate_orchestration_log_candidate_id"),
            ["candidate_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_candidate_orchestration_log_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("candidate_orchestration_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_candidate_orchestration_log_expires_at"))
        batch_op.drop_index(batch_op.f("ix_candidate_orchestration_log_candidate_id"))
    op.drop_table("candidate_orchestration_log")
    with op.batch_alter_table("promotion_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotion_decisions_candidate_id"))
    op.drop_table("promotion_decisions")
    with op.batch_alter_table("candidates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_candidates_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_candidates_status"))
        batch_op.drop_index(batch_op.f("ix_candidates_source_run_id"))
    op.drop_table("candidates")
