"""Set-based scans of the scheduled reconciliation, paged by keyset (timestamp, id).

``overdue_page`` reads the partial index ``ix_audit_expectations_open_deadline`` (open
expectations only, ordered by deadline): its cost grows with the overdue rows, not with
all rows. ``unexpected_acks_page`` reads acks created since a watermark
(``ix_domain_acks_created_at``) that match no expectation of their run.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select, tuple_
from sqlalchemy.orm import Session

from db.models import AuditExpectation, DomainAck


@dataclass(frozen=True)
class Page:
    """Rows of one page as (timestamp, id, run_id); ``last`` is the next page's start."""

    rows: list[tuple[datetime, str, str]]
    full: bool

    @property
    def run_ids(self) -> list[str]:
        """Distinct run ids in page order."""
        return list(dict.fromkeys(run_id for _, _, run_id in self.rows))

    @property
    def last(self) -> tuple[datetime, str] | None:
        return (self.rows[-1][0], self.rows[-1][1]) if self.full else None


def overdue_statement(
    as_of: datetime, after: tuple[datetime, str] | None, limit: int
) -> Select[tuple[datetime, str, str]]:
    """Open expectations due at or before ``as_of``, after the keyset position ``after``."""
    e = AuditExpectation
    stmt = select(e.deadline, e.id, e.run_id).where(
        # The partial index predicate, spelled as the index spells it.
        e.acked_at.is_(None),
        e.withdrawn_at.is_(None),
        e.deadline <= as_of,
    )
    if after is not None:
        # The first condition gives the index its range; the second breaks ties on id.
        stmt = stmt.where(e.deadline >= after[0], tuple_(e.deadline, e.id) > tuple(after))
    return stmt.order_by(e.deadline, e.id).limit(limit)


def overdue_page(
    session: Session, as_of: datetime, after: tuple[datetime, str] | None, limit: int
) -> Page:
    rows = [tuple(r) for r in session.execute(overdue_statement(as_of, after, limit))]
    return Page(rows, len(rows) == limit)


def unexpected_acks_statement(
    since: datetime, as_of: datetime, after: tuple[datetime, str] | None, limit: int
) -> Select[tuple[datetime, str, str]]:
    """Acks created in [since, as_of] for which the run declared no such expectation."""
    a, e = DomainAck, AuditExpectation
    declared = exists().where(e.run_id == a.run_id, e.domain == a.domain, e.action == a.action)
    stmt = select(a.created_at, a.id, a.run_id).where(
        a.created_at >= since, a.created_at <= as_of, ~declared
    )
    if after is not None:
        stmt = stmt.where(a.created_at >= after[0], tuple_(a.created_at, a.id) > tuple(after))
    return stmt.order_by(a.created_at, a.id).limit(limit)


def unexpected_acks_page(
    session: Session,
    since: datetime,
    as_of: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Page:
    rows = [
        tuple(r) for r in session.execute(unexpected_acks_statement(since, as_of, after, limit))
    ]
    return Page(rows, len(rows) == limit)
