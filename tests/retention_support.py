"""Rows of a given age for the retention tests: events with their delivery rows and the
reactor groups' cursors, findings, suppressed alerts, runs with their ledger rows, and
the rows retention never purges. Tests' fixtures may insert rows directly."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from db import migrate
from db.engine import make_engine, make_session_factory
from db.models import (
    AuditExpectation,
    AuditLedgerEntry,
    DomainAck,
    EventCursor,
    EventDelivery,
    IdempotencyRecord,
    OutboxEvent,
    ReconciliationFinding,
    Run,
    SuppressedAlert,
)
from domain.enums import Phase, RunStatus

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
KEPT_FOREVER = (AuditLedgerEntry, DomainAck, AuditExpectation)


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def database_url(backend: str, fresh_database, tmp_path) -> str:  # noqa: ANN001
    """An empty database of its own: a file under the test's tmp_path, or a fresh
    PostgreSQL schema (conftest's fresh_database; skipped without TEST_DATABASE_URL)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'retention.db'}"
    return fresh_database(backend)


def migrated(url: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine, make_session_factory(engine)


def add_event(sessions: sessionmaker[Session], created_at: datetime,
              deliveries: tuple[bool, ...] = (True,), topic: str = "test.retention",
              ) -> str:  # fmt: skip
    """An outbox event and one delivery row per entry of ``deliveries`` (True: delivered)."""
    event_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(OutboxEvent(id=event_id, topic=topic, tenant_id="t-ret", run_id=None,
                                payload={"tenant_id": "t-ret"}, created_at=created_at))  # fmt: skip
        for i, delivered in enumerate(deliveries):
            session.add(
                EventDelivery(event_id=event_id, handler=f"h{i}", topic=topic,
                              event_created_at=created_at, created_at=created_at,
                              next_attempt_at=created_at, attempts=1 if delivered else 3,
                              delivered_at=created_at + timedelta(seconds=1) if delivered else None,
                              last_error=None if delivered else "receiver down")
            )  # fmt: skip
    return event_id


def set_cursor(sessions: sessionmaker[Session], group: str, position_at: datetime) -> None:
    with sessions.begin() as session:
        session.merge(EventCursor(group_name=group, position_at=position_at, position_id="",
                                  swept_at=position_at, updated_at=position_at))  # fmt: skip


def deliver_all(sessions: sessionmaker[Session], event_id: str) -> None:
    with sessions.begin() as session:
        for row in session.scalars(select(EventDelivery).where(EventDelivery.event_id == event_id)):
            row.delivered_at = now()


def add_finding(sessions: sessionmaker[Session], run_id: str, found_at: datetime) -> str:
    finding_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            ReconciliationFinding(id=finding_id, run_id=run_id, tenant_id="t-ret", kind="DRIFT",
                                  severity="MEDIUM", domain="incidents", action="create_incident",
                                  cause=None, details={}, reconciliation_id="reconcile-x/1",
                                  found_at=found_at)
        )  # fmt: skip
    return finding_id


def add_expectation(sessions: sessionmaker[Session], run_id: str, created_at: datetime, *,
                    acked: bool) -> str:  # fmt: skip
    """An expectation of ``run_id`` due a minute after ``created_at``; open unless acked."""
    expectation_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            AuditExpectation(id=expectation_id, run_id=run_id, tenant_id="t-ret",
                             domain="orchestrator", action="finalize_run",
                             deadline=created_at + timedelta(minutes=1), created_at=created_at,
                             acked_at=created_at + timedelta(seconds=30) if acked else None)
        )  # fmt: skip
    return expectation_id


def ack_expectation(sessions: sessionmaker[Session], expectation_id: str) -> None:
    with sessions.begin() as session:
        session.get_one(AuditExpectation, expectation_id).acked_at = now()


def add_suppressed(sessions: sessionmaker[Session], created_at: datetime) -> str:
    alert_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            SuppressedAlert(id=alert_id, tenant_id="t-ret", alert_type="MISSING_ACK",
                            severity="HIGH", domain="audit", run_id=None, dedup_key="k",
                            reason="DEDUP", detail="within the dedup window",
                            source_event_id=str(uuid.uuid4()), created_at=created_at)
        )  # fmt: skip
    return alert_id


def add_run(sessions: sessionmaker[Session], phase: Phase, *, created_at: datetime,
            finalized_at: datetime | None = None, updated_at: datetime | None = None,
            ledger_rows: int = 3) -> str:  # fmt: skip
    """A run row in ``phase`` and ``ledger_rows`` idempotency-ledger rows of its execution,
    written when it was created."""
    run_id = new_id("ret")
    status = {Phase.COMPLETED: RunStatus.SUCCEEDED, Phase.FAILED: RunStatus.FAILED}.get(
        phase, RunStatus.RUNNING
    )
    execution_id = str(uuid.uuid4())  # (a Temporal run id: the cross-check may ask about it)
    with sessions.begin() as session:
        session.add(
            Run(id=run_id, tenant_id="t-ret", workflow_id=f"run-{run_id}",
                execution_id=execution_id, phase=phase, status=status, steps_total=1, config={},
                created_at=created_at,
                updated_at=updated_at or finalized_at or created_at, finalized_at=finalized_at)
        )  # fmt: skip
    add_ledger_rows(sessions, f"run-{run_id}", created_at, ledger_rows, execution_id)
    return run_id


def add_ledger_rows(sessions: sessionmaker[Session], workflow_id: str, created_at: datetime,
                    n: int, execution_id: str = "") -> None:  # fmt: skip
    with sessions.begin() as session:
        for i in range(n):
            session.add(IdempotencyRecord(workflow_id=workflow_id, execution_id=execution_id,
                                          step_key=f"step:{i}", tenant_id="t-ret",
                                          result={}, created_at=created_at))  # fmt: skip


def add_kept_forever(sessions: sessionmaker[Session], run_id: str, created_at: datetime) -> None:
    """An audit-ledger entry and an ack as old as the rest: retention never purges them."""
    with sessions.begin() as session:
        session.add(
            AuditLedgerEntry(id=str(uuid.uuid4()), tenant_id="t-ret", event_type="RUN_FINALIZED",
                             entity_type="run", entity_id=run_id, actor_id="system",
                             actor_authority="SYSTEM_AUTO", source="orchestrator",
                             before_state=None, after_state={"run_id": run_id},
                             created_at=created_at)
        )  # fmt: skip
        session.add(
            DomainAck(id=str(uuid.uuid4()), run_id=run_id, tenant_id="t-ret",
                      domain="orchestrator", action="finalize_run", status="ACKED",
                      result_id="succeeded", rolled_back=False, details={},
                      created_at=created_at)
        )  # fmt: skip


def ids(sessions: sessionmaker[Session], column) -> set:  # noqa: ANN001 - a mapped column
    with sessions() as session:
        return set(session.scalars(select(column)))


def ledger_workflows(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Workflow id → its idempotency-ledger rows."""
    r = IdempotencyRecord
    with sessions() as session:
        found = session.execute(select(r.workflow_id, func.count()).group_by(r.workflow_id))
        return {workflow_id: n for workflow_id, n in found}


def table_counts(sessions: sessionmaker[Session], models: tuple = KEPT_FOREVER) -> dict[str, int]:
    with sessions() as session:
        return {
            m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0
            for m in models
        }
