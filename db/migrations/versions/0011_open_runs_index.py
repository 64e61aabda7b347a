"""open runs: a partial index over the runs whose row is still open; longer causes

``ix_runs_open_created`` (created_at, id) WHERE phase NOT IN ('COMPLETED', 'FAILED'): the
scheduled reconciliation pages through it to cross-check every open run with Temporal,
so the page's cost grows with the open runs, not with all runs. A finding's ``cause``
becomes text: a stale run's cause names the closure and its time ("workflow TERMINATED
at 2026-01-02T03:04:05+00:00 without finalizing"), longer than the 40 characters before.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_RUN = "phase NOT IN ('COMPLETED', 'FAILED')"


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.alter_column(
            "cause", existing_type=sa.String(length=40), type_=sa.Text(), existing_nullable=True
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_runs_open_created",
            ["created_at", "id"],
            unique=False,
            postgresql_where=sa.text(OPEN_RUN),
            sqlite_where=sa.text(OPEN_RUN),
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_open_created")
    # Causes written since are cut to fit the column they had.
    op.execute("UPDATE reconciliation_findings SET cause = substr(cause, 1, 40)")
    with op.batch_alter_table("reconciliation_findings", schema=None) as batch_op:
        batch_op.alter_column(
            "cause", existing_type=sa.Text(), type_=sa.String(length=40), existing_nullable=True
        )
