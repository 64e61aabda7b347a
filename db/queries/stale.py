"""Set-based scans of the scheduled reconciliation, paged by keyset (timestamp, id).

``overdue_page`` reads the partial index ``ix_audit_expectations_open_deadline`` (open
expectations only, ordered by deadline): its cost grows with the overdue rows, not with
all rows. ``unexpected_acks_page`` reads acks created since a watermark
(``ix_domain_acks_created_at``) that match no expectation of their run. ``open_runs_page``
reads the partial index ``ix_runs_open_created`` (runs whose row is still open): its cost
grows with the open runs.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, select, text, tuple_
from sqlalchemy.orm import Session

from db.models import AuditExpectation, DomainAck, Run
from db.models.runs import OPEN_RUN


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


@dataclass(frozen=True)
class OpenRunsPage(Page):
    """A page of open runs: rows (created_at, id, id), and each run's owning execution."""

    executions: dict[str, str]


def open_runs_statement(
    after: tuple[datetime, str] | None, limit: int
) -> Select[tuple[datetime, str, str | None]]:
    """Runs whose row is open (phase neither COMPLETED nor FAILED), after ``after``."""
    r = Run
    # The partial index predicate, as a literal exactly as the index spells it (a bound
    # parameter would keep SQLite from proving the index applies).
    stmt = select(r.created_at, r.id, r.execution_id).where(text(OPEN_RUN))
    if after is not None:
        stmt = stmt.where(r.created_at >= after[0], tuple_(r.created_at, r.id) > tuple(after))
    return stmt.order_by(r.created_at, r.id).limit(limit)


def open_runs_page(
    session: Session, after: tuple[datetime, str] | None, limit: int
) -> OpenRunsPage:
    found = session.execute(open_runs_statement(after, limit)).all()
    rows = [(at, run_id, run_id) for at, run_id, _ in found]
    executions = {run_id: execution for _, run_id, execution in found if execution}
    return OpenRunsPage(rows, len(rows) == limit, executions)
