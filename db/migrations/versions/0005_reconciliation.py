"""reconciliation: findings, alerts (sent and suppressed), tenant alert settings, event deliveries

Revision ID: 0005
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reconciliation_findings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("cause", sa.String(length=40), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("reconciliation_id", sa.String(length=200), nullable=False),
        sa.Column("found_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_findings")),
    )
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reconciliation_findings_run_id"), ["run_id"], unique=False
        )
        batch_op.create_index(
            "ix_reconciliation_findings_tenant_found", ["tenant_id", "found_at"], unique=False
        )

    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("alert_type", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=True),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("details", JSON, nullable=False),
        sa.Column("source_event_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_run_id"), ["run_id"], unique=False)
        batch_op.create_index("ix_alerts_tenant_created", ["tenant_id", "created_at"], unique=False)

    op.create_table(
        "suppressed_alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("alert_type", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("domain", sa.String(length=50), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=True),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("source_event_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressed_alerts")),
    )
    with op.batch_alter_table("suppressed_alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_suppressed_alerts_tenant_created", ["tenant_id", "created_at"], unique=False
        )

    op.create_table(
        "tenant_alert_settings",
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("alerts_enabled", sa.Boolean(), nullable=False),
        sa.Column("max_alerts_per_hour", sa.Integer(), nullable=True),
        sa.Column("dedup_window_seconds", sa.Integer(), nullable=True),
        sa.Column("domain_cooldowns", JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_alert_settings")),
    )

    op.create_table(
        "event_deliveries",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("event_created_at", WHEN, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", WHEN, nullable=True),
        sa.Column("delivered_at", WHEN, nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", "handler", name=op.f("pk_event_deliveries")),
    )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_deliveries_delivered_at"), ["delivered_at"], unique=False
        )
        batch_op.create_index(
            "ix_event_deliveries_pending",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("delivered_at IS NULL"),
            sqlite_where=sa.text("delivered_at IS NULL"),
        )

    op.create_table(
        "event_cursors",
        sa.Column("group_name", sa.String(length=100), nullable=False),
        sa.Column("position_at", WHEN, nullable=False),
        sa.Column("position_id", sa.String(length=36), nullable=False),
        sa.Column("swept_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("group_name", name=op.f("pk_event_cursors")),
    )
    op.create_table(
        "reactor_heartbeats",
        sa.Column("reactor_id", sa.String(length=200), nullable=False),
        sa.Column("group_name", sa.String(length=100), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("beat_at", WHEN, nullable=False),
        sa.Column("delivered", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("reactor_id", name=op.f("pk_reactor_heartbeats")),
    )
    # The scan for acks nobody expected pages through recent acks by creation time.
    with op.batch_alter_table("domain_acks", schema=None) as batch_op:
        batch_op.create_index("ix_domain_acks_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("domain_acks", schema=None) as batch_op:
        batch_op.drop_index("ix_domain_acks_created_at")
    op.drop_table("reactor_heartbeats")
    op.drop_table("event_cursors")
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_event_deliveries_pending",
            postgresql_where=sa.text("delivered_at IS NULL"),
            sqlite_where=sa.text("delivered_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_event_deliveries_delivered_at"))
    op.drop_table("event_deliveries")
    op.drop_table("tenant_alert_settings")
    with op.batch_alter_table("suppressed_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_suppressed_alerts_tenant_created")
    op.drop_table("suppressed_alerts")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_tenant_created")
        batch_op.drop_index(batch_op.f("ix_alerts_run_id"))
    op.drop_table("alerts")
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_findings_tenant_found")
        batch_op.drop_index(batch_op.f("ix_reconciliation_findings_run_id"))
    op.drop_table("reconciliation_findings")
