"""retention: indexes by age for the tables the reconciliation purges

``ix_reconciliation_findings_found_at``, ``ix_suppressed_alerts_created_at`` and
``ix_idempotency_ledger_created_at``: services.retention deletes the expired rows of each,
oldest first, a page at a time, so a page's cost grows with the expired rows, not with all
rows (outbox_events.created_at was indexed already).

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("reconciliation_findings", "ix_reconciliation_findings_found_at", "found_at"),
    ("suppressed_alerts", "ix_suppressed_alerts_created_at", "created_at"),
    ("idempotency_ledger", "ix_idempotency_ledger_created_at", "created_at"),
)


def upgrade() -> None:
    for table, name, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(name, [column], unique=False)


def downgrade() -> None:
    for table, name, _ in reversed(INDEXES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
