"""Exactly-once writes and the audit trail: a step's domain rows, its ack and its ledger row
share one transaction.

A retried activity (or a concurrent duplicate attempt) finds the ledger row keyed by
(workflow id, Temporal run id, step key) and returns the first result without writing
anything new. The Temporal run id makes the key an execution's own: a later execution with
the same workflow id (a reused run id) never reads an earlier execution's results.

The one writer of ``idempotency_ledger``, ``domain_acks``, ``audit_expectations`` (declared
at T0, met by an ack, withdrawn or declared when a run's path changes) and ``audit_ledger``
(``audit_entry``: every entry's id is derived from its key, so a retried write never adds
a second entry). Ledger rows of runs that can no longer be retried go with
``delete_records`` (services.retention); acks, expectations and the audit ledger are kept.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, delete, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditExpectation, AuditLedgerEntry, DomainAck, IdempotencyRecord
from domain.contract import FINALIZE_RUN
from domain.enums import AckStatus
from domain.ids import derive_id

T = TypeVar("T", bound=BaseModel)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Execution:
    """The workflow execution a write belongs to: its workflow id and Temporal run id (the
    activities read both from their context: activities.execution)."""

    workflow_id: str
    run_id: str

    def shared(self) -> "Execution":
        """The key every execution of this workflow id shares: for results that depend only
        on deterministic ids (e.g. a candidate's decision)."""
        return Execution(self.workflow_id, "")


def run_once(
    sessions: sessionmaker[Session],
    execution: Execution,
    step_key: str,
    result_type: type[T],
    write: Callable[[Session], T],
    *,
    tenant_id: str | None = None,
) -> T:
    """Run ``write`` once per (workflow id, Temporal run id, step key); later calls of the
    same execution return the first result."""
    try:
        with sessions.begin() as session:
            stored = _recorded(session, execution, step_key)
            if stored is not None:
                return result_type.model_validate(stored)
            result = write(session)
            insert_row(
                session,
                IdempotencyRecord,
                workflow_id=execution.workflow_id,
                execution_id=execution.run_id,
                step_key=step_key,
                tenant_id=tenant_id,
                result=result.model_dump(mode="json"),
                created_at=utcnow(),
            )
            return result
    except IntegrityError:
        # A concurrent attempt committed first; its result is the one that counts.
        with sessions.begin() as session:
            stored = _recorded(session, execution, step_key)
            if stored is None:
                raise
            return result_type.model_validate(stored)


# Built once: the hot path binds parameters instead of rebuilding its statements.
_LEDGER = IdempotencyRecord.__table__
_RECORDED = select(_LEDGER.c.result).where(
    _LEDGER.c.workflow_id == bindparam("wf_id"),
    _LEDGER.c.execution_id == bindparam("execution_id"),
    _LEDGER.c.step_key == bindparam("step_key"),
)
_EXPECTATIONS = AuditExpectation.__table__
_CLOSE_EXPECTATION = (
    update(_EXPECTATIONS)
    .where(
        _EXPECTATIONS.c.run_id == bindparam("p_run_id"),
        _EXPECTATIONS.c.domain == bindparam("p_domain"),
        _EXPECTATIONS.c.action == bindparam("p_action"),
        _EXPECTATIONS.c.acked_at.is_(None),
    )
    .values(acked_at=bindparam("p_now"))
)


def execute_core(session: Session, statement, params: dict):  # noqa: ANN001, ANN202
    """Run a Core statement on the session's connection, after what the session holds
    (a no-op flush when nothing is pending): statements apply in the order written."""
    session.flush()
    return session.connection().execute(statement, params)


def recorded_result(session: Session, execution: Execution, step_key: str) -> dict | None:
    """The recorded result of ``step_key`` in this execution, in the caller's transaction."""
    return _recorded(session, execution, step_key)


def _recorded(session: Session, execution: Execution, step_key: str) -> dict | None:
    params = {"wf_id": execution.workflow_id, "execution_id": execution.run_id,
              "step_key": step_key}  # fmt: skip
    return execute_core(session, _RECORDED, params).scalar_one_or_none()


def insert_row(session: Session, model: type, **values: object) -> None:
    """Insert one row at once, bypassing the unit of work: for the hot write path, where
    nothing reads the row back through the session."""
    execute_core(session, model.__table__.insert(), values)


def insert_rows(session: Session, model: type, rows: list[dict]) -> None:
    """Insert several rows of one table in one executemany, bypassing the unit of work."""
    if rows:
        execute_core(session, model.__table__.insert(), rows)


def ack(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    domain: str,
    action: str,
    result_id: str | None,
    status: AckStatus = AckStatus.ACKED,
    error: str | None = None,
    rollback_reason: str | None = None,
    details: dict | None = None,
) -> None:
    """Write a DomainAck and close the matching expectation in the caller's transaction."""
    now = utcnow()
    insert_row(
        session,
        DomainAck,
        id=derive_id(run_id, "ack", domain, action, status),
        run_id=run_id,
        tenant_id=tenant_id,
        domain=domain,
        action=action,
        status=status,
        result_id=result_id,
        rolled_back=status == AckStatus.ROLLED_BACK,
        rollback_reason=rollback_reason,
        error=error,
        details=details or {},
        created_at=now,
    )
    if status != AckStatus.ROLLED_BACK:
        execute_core(
            session,
            _CLOSE_EXPECTATION,
            {"p_run_id": run_id, "p_domain": domain, "p_action": action, "p_now": now},
        )


def declare_expectations(
    session: Session,
    run_id: str,
    tenant_id: str,
    expected: Iterable[tuple[str, str, datetime | None]],
    now: datetime,
) -> None:
    """Insert a run's contract at T0: one expectation per (domain, action, deadline)."""
    rows = [
        {"id": derive_id(run_id, "expectation", domain, action), "run_id": run_id,
         "tenant_id": tenant_id, "domain": domain, "action": action, "deadline": deadline,
         "created_at": now}
        for domain, action, deadline in expected
    ]  # fmt: skip
    insert_rows(session, AuditExpectation, rows)


def amend_expectations(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    reason: str,
    withdraw_all_open: bool,
    withdraw: Iterable[tuple[str, str]],
    declare: Iterable[tuple[str, str]],
    now: datetime,
) -> None:
    """Withdraw (never delete) open expectations the run will not meet — every one but
    finalize_run with ``withdraw_all_open`` — and declare new ones, due with finalize_run."""
    still_open = (
        AuditExpectation.run_id == run_id,
        AuditExpectation.acked_at.is_(None),
        AuditExpectation.withdrawn_at.is_(None),
    )
    withdrawn = {"withdrawn_at": now, "withdrawn_reason": reason}
    if withdraw_all_open:
        session.execute(
            update(AuditExpectation)
            .where(*still_open, AuditExpectation.action != FINALIZE_RUN[1])
            .values(withdrawn)
        )
    for domain, action in withdraw:
        session.execute(
            update(AuditExpectation)
            .where(*still_open, AuditExpectation.domain == domain,
                   AuditExpectation.action == action)
            .values(withdrawn)
        )  # fmt: skip
    finalize = session.scalars(
        select(AuditExpectation).where(
            AuditExpectation.run_id == run_id, AuditExpectation.action == FINALIZE_RUN[1]
        )
    ).first()
    deadline = finalize.deadline if finalize else None
    for domain, action in declare:
        session.merge(
            AuditExpectation(
                id=derive_id(run_id, "expectation", domain, action),
                run_id=run_id,
                tenant_id=tenant_id,
                domain=domain,
                action=action,
                deadline=deadline,
                created_at=now,
            )
        )


def audit_entry(
    session: Session,
    *,
    key: str,
    tenant_id: str,
    event_type: str,
    entity_type: str,
    entity_id: str,
    after_state: dict[str, Any],
    before_state: dict[str, Any] | None = None,
    actor_id: str = "system:governed-runs",
    actor_authority: str | None = "SYSTEM_AUTO",
    source: str = "orchestrator",
) -> None:
    """Append an audit-ledger entry, id ``derive_id("audit-ledger", key)``: ``key`` names
    what makes the entry unique (a repeat that is legitimately a new entry carries its
    time). ``after_state`` must carry the run id when there is one. Append-only and never
    read back in the writing transaction: inserted at once (Core)."""
    insert_row(
        session,
        AuditLedgerEntry,
        id=derive_id("audit-ledger", key),
        tenant_id=tenant_id,
        event_type=event_type,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        actor_authority=actor_authority,
        source=source,
        before_state=before_state,
        after_state=after_state,
        created_at=utcnow(),
    )


# A purge's deletes: the session holds none of the rows, so nothing to synchronise.
UNSYNCED = {"synchronize_session": False}


def delete_records(session: Session, keys: list[tuple[str, str, str]]) -> int:
    """Delete these idempotency-ledger rows, keyed (workflow id, Temporal run id, step
    key), in the caller's transaction — only rows of finalized runs past their TTL, which no
    execution will ask for again (services.retention); returns how many went."""
    if not keys:
        return 0
    r = IdempotencyRecord
    key = tuple_(r.workflow_id, r.execution_id, r.step_key)
    return session.execute(delete(r).where(key.in_(keys)), execution_options=UNSYNCED).rowcount
