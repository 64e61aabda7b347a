"""The stale scan's SQL (db.queries.stale) on both databases: keyset paging and query plans."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, insert, text
from sqlalchemy.orm import Session, sessionmaker

from db import migrate
from db.engine import make_engine, make_session_factory
from db.models import AuditExpectation, DomainAck, Run
from db.queries.stale import (
    open_runs_page,
    open_runs_statement,
    overdue_page,
    overdue_statement,
    unexpected_acks_page,
)
from domain.ids import derive_id

pytestmark = pytest.mark.timeout(120)

# Deadlines far in the past: no other test writes rows this old, so the shared database
# can be scanned "as of" this moment without seeing anyone else's rows.
BASE = datetime(2001, 1, 1, tzinfo=UTC)
AS_OF = BASE + timedelta(days=1)
PARTIAL_INDEX = "ix_audit_expectations_open_deadline"
OPEN_RUNS_INDEX = "ix_runs_open_created"
PHASES = ["AUTHORIZED", "EXECUTING", "GOVERNANCE_CHECK", "COMPLETED", "FAILED"]


def expectation(run_id: str, action: str, deadline: datetime | None, **state) -> dict:
    return {
        "id": derive_id(run_id, "expectation", "traces", action),
        "run_id": run_id,
        "tenant_id": "t-scan",
        "domain": "traces",
        "action": action,
        "deadline": deadline,
        "created_at": BASE,
        "acked_at": state.get("acked_at"),
        "withdrawn_at": state.get("withdrawn_at"),
    }


def seed(sessions: sessionmaker[Session], rows: list[dict]) -> None:
    with sessions.begin() as session:
        session.execute(insert(AuditExpectation), rows)


def scan_all(session: Session, as_of: datetime, limit: int) -> list[tuple]:
    rows, after = [], None
    while True:
        page = overdue_page(session, as_of, after, limit)
        rows += page.rows
        after = page.last
        if after is None:
            return rows


def test_overdue_scan_pages_through_open_overdue_expectations_once(sessions):
    prefix = f"scan-{uuid.uuid4().hex[:8]}"
    rows, wanted = [], set()
    for i in range(30):
        run_id = f"{prefix}-{i:02d}"
        due = BASE + timedelta(minutes=i % 7)  # many runs share a deadline: ties on id
        kind = i % 5
        for action in ("start_trace", "complete_trace", "finalize_run"):
            if kind == 0:
                rows.append(expectation(run_id, action, due, acked_at=due))
            elif kind == 1:
                rows.append(expectation(run_id, action, due, withdrawn_at=due))
            elif kind == 2:
                rows.append(expectation(run_id, action, AS_OF + timedelta(seconds=1)))
            else:
                rows.append(expectation(run_id, action, due))
                wanted.add(rows[-1]["id"])
    seed(sessions, rows)
    with sessions() as session:
        found = [r for r in scan_all(session, AS_OF, limit=7) if r[2].startswith(prefix)]
    ids = [r[1] for r in found]
    assert len(ids) == len(set(ids)) == len(wanted) == 36
    assert set(ids) == wanted
    assert [(r[0], r[1]) for r in found] == sorted((r[0], r[1]) for r in found)
    with sessions() as session:
        page = overdue_page(session, AS_OF, None, 500)
    assert {r for r in page.run_ids if r.startswith(prefix)} == {
        f"{prefix}-{i:02d}" for i in range(30) if i % 5 in (3, 4)
    }


def test_unexpected_acks_scan_finds_only_acks_nobody_expected(sessions):
    run_id = f"scan-ack-{uuid.uuid4().hex[:8]}"
    seed(sessions, [expectation(run_id, "start_trace", BASE, acked_at=BASE)])

    def ack(action: str, at: datetime) -> dict:
        return {
            "id": derive_id(run_id, "ack", "traces", action, "ACKED"),
            "run_id": run_id,
            "tenant_id": "t-scan",
            "domain": "traces",
            "action": action,
            "status": "ACKED",
            "result_id": None,
            "rolled_back": False,
            "details": {},
            "created_at": at,
        }

    with sessions.begin() as session:
        session.execute(
            insert(DomainAck),
            [
                ack("start_trace", BASE + timedelta(minutes=1)),
                ack("rogue_action", BASE + timedelta(minutes=2)),
                ack("too_old", BASE - timedelta(days=1)),
            ],
        )
    with sessions() as session:
        page = unexpected_acks_page(session, BASE, AS_OF, None, 100)
    mine = [r for r in page.rows if r[2] == run_id]
    assert [r[1] for r in mine] == [derive_id(run_id, "ack", "traces", "rogue_action", "ACKED")]


def explain_rows(engine: Engine, stmt, prefix: str) -> str:  # noqa: ANN001 - a Select
    compiled = stmt.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            params = [compiled.params[name] for name in compiled.positiontup]
            params = [p.replace(tzinfo=None) if isinstance(p, datetime) else p for p in params]
            rows = conn.exec_driver_sql(prefix + str(compiled), tuple(params)).all()
            return "\n".join(str(r[-1]) for r in rows)
        rows = conn.exec_driver_sql(prefix + str(compiled), compiled.params).all()
        return json.dumps(rows[0][0])


def test_stale_scan_query_plan_uses_partial_index_sqlite(fresh_database):
    engine = make_engine(fresh_database("sqlite"))
    migrate.upgrade(engine)
    plan = explain_rows(engine, overdue_statement(AS_OF, None, 100), "EXPLAIN QUERY PLAN ")
    assert PARTIAL_INDEX in plan, plan
    after = (BASE, "00000000-0000-0000-0000-000000000000")
    plan = explain_rows(engine, overdue_statement(AS_OF, after, 100), "EXPLAIN QUERY PLAN ")
    assert PARTIAL_INDEX in plan, plan
    engine.dispose()


def test_stale_scan_query_plan_uses_partial_index_postgresql(fresh_database):
    """EXPLAIN ANALYZE on PostgreSQL: the partial index, and rows read = overdue rows only."""
    engine = make_engine(fresh_database("postgresql"))
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    rows = []
    for i in range(4000):  # 20 000 expectations, all acked but the 25 of five runs
        run_id = f"bulk-{i}"
        due = BASE + timedelta(seconds=i)
        for action in ("a", "b", "c", "d", "e"):
            open_ = i % 800 == 0
            rows.append(expectation(run_id, action, due, acked_at=None if open_ else due))
    seed(sessions, rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE audit_expectations"))
    for after in (None, (BASE, "00000000-0000-0000-0000-000000000000")):
        plan = json.loads(
            explain_rows(
                engine, overdue_statement(AS_OF, after, 1000), "EXPLAIN (ANALYZE, FORMAT JSON) "
            )
        )
        nodes = list(walk(plan[0]["Plan"]))
        scans = [n for n in nodes if "Scan" in n["Node Type"]]
        assert [n.get("Index Name") for n in scans] == [PARTIAL_INDEX], scans
        assert all(n["Node Type"] != "Seq Scan" for n in nodes)
        assert scans[0]["Actual Rows"] == 25
    engine.dispose()


def walk(node: dict):  # noqa: ANN201 - a generator of plan nodes
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def run_row(run_id: str, phase: str, created_at: datetime) -> dict:
    return {
        "id": run_id,
        "tenant_id": "t-scan",
        "workflow_id": f"run-{run_id}",
        "execution_id": f"exec-{run_id}",
        "phase": phase,
        "status": "failed" if phase == "FAILED" else "running",
        "steps_total": 1,
        "steps_done": 0,
        "cost": 0,
        "observability_status": "OK",
        "config": {},
        "created_at": created_at,
        "updated_at": created_at,
    }


def open_runs_of(sessions: sessionmaker[Session], prefix: str) -> list[tuple[str, str | None]]:
    found, after = [], None
    with sessions() as session:
        while True:
            page = open_runs_page(session, after, 4)
            found += [(r, page.executions.get(r)) for r in page.run_ids if r.startswith(prefix)]
            after = page.last
            if after is None or not page.run_ids[-1].startswith(prefix):
                return found


def test_open_runs_scan_pages_through_open_runs_once(sessions):
    prefix = f"open-{uuid.uuid4().hex[:8]}"
    runs = [  # runs created long ago: nobody else's rows come before them
        run_row(f"{prefix}-{i:02d}", PHASES[i % 5], BASE + timedelta(minutes=i % 4))
        for i in range(30)
    ]
    with sessions.begin() as session:
        session.execute(insert(Run), runs)
    try:
        found = open_runs_of(sessions, prefix)
    finally:  # rows without a workflow: no later reconciliation of the session should see them
        with sessions.begin() as session:
            session.execute(delete(Run).where(Run.id.startswith(prefix)))
    wanted = sorted(
        (r["created_at"], r["id"]) for r in runs if r["phase"] not in ("COMPLETED", "FAILED")
    )
    assert [r for r, _ in found] == [run_id for _, run_id in wanted]  # once each, in order
    assert all(execution == f"exec-{r}" for r, execution in found)


def test_open_runs_query_plan_uses_partial_index_sqlite(fresh_database):
    engine = make_engine(fresh_database("sqlite"))
    migrate.upgrade(engine)
    for after in (None, (BASE, "r-0")):
        stmt = open_runs_statement(after, 100)
        plan = explain_rows(engine, stmt, "EXPLAIN QUERY PLAN ")
        assert OPEN_RUNS_INDEX in plan, plan
    engine.dispose()


def test_open_runs_query_plan_uses_partial_index_postgresql(fresh_database):
    """EXPLAIN ANALYZE on PostgreSQL: the partial index, and rows read = open runs only."""
    engine = make_engine(fresh_database("postgresql"))
    migrate.upgrade(engine)
    sessions = make_session_factory(engine)
    runs = [  # 4000 runs, all ended but five
        run_row(
            f"bulk-{i}", "EXECUTING" if i % 800 == 0 else "COMPLETED", BASE + timedelta(seconds=i)
        )
        for i in range(4000)
    ]
    with sessions.begin() as session:
        session.execute(insert(Run), runs)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE runs"))
    for after in (None, (BASE, "bulk-0")):
        stmt = open_runs_statement(after, 1000)
        plan = json.loads(explain_rows(engine, stmt, "EXPLAIN (ANALYZE, FORMAT JSON) "))
        nodes = list(walk(plan[0]["Plan"]))
        scans = [n for n in nodes if "Scan" in n["Node Type"]]
        assert [n.get("Index Name") for n in scans] == [OPEN_RUNS_INDEX], scans
        assert scans[0]["Actual Rows"] == (5 if after is None else 4)
    engine.dispose()
