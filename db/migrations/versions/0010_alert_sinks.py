"""alert sinks: where a tenant's alerts are sent, and every delivery attempt

- ``alert_sinks``: a tenant's webhook, Slack and e-mail sinks, each with its minimum
  severity, its alert types, the settings that may be shown, the secrets (URL, signing
  secret, SMTP password) as a Fernet token, and its health (failures in a row).
- ``alert_sink_attempts``: one row per attempt to deliver an alert to a sink: outcome,
  HTTP status or SMTP reply code, error, attempt number, duration and time.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_sinks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("min_severity", sa.String(length=10), nullable=False),
        sa.Column("alert_types", JSONType, nullable=True),
        sa.Column("settings", JSONType, nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", UTCDateTime, nullable=True),
        sa.Column("last_success_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_sinks")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_alert_sinks_tenant_id")),
    )
    op.create_table(
        "alert_sink_attempts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=False),
        sa.Column("sink_id", sa.String(length=36), nullable=False),
        sa.Column("sink_name", sa.String(length=100), nullable=False),
        sa.Column("sink_kind", sa.String(length=20), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("alert_type", sa.String(length=30), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("attempted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_sink_attempts")),
    )
    with op.batch_alter_table("alert_sink_attempts", schema=None) as batch:
        batch.create_index(batch.f("ix_alert_sink_attempts_sink_id"), ["sink_id"], unique=False)
        batch.create_index(
            "ix_alert_sink_attempts_tenant_attempted", ["tenant_id", "attempted_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_sink_attempts", schema=None) as batch:
        batch.drop_index("ix_alert_sink_attempts_tenant_attempted")
        batch.drop_index(batch.f("ix_alert_sink_attempts_sink_id"))
    op.drop_table("alert_sink_attempts")
    op.drop_table("alert_sinks")
