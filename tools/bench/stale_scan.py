"""The stale-run scan (db.queries.stale) over 1,000,000 expectation rows in PostgreSQL.

The rows are bulk-loaded with one ``INSERT ... SELECT generate_series`` into a dedicated
schema that is dropped afterwards: 98 % acked, 1 % open and overdue, 1 % open and not yet
due — like a database where most runs finished. Measured: the first page (warm: p50 of
repeated executions; cold: the first execution after a server restart), paging through
every overdue row, the plan (the partial index must be used) and the index sizes.
"""

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from db.engine import make_engine
from db.models import AuditExpectation
from db.queries.stale import overdue_page, overdue_statement
from tools.bench.stats import percentile

PARTIAL_INDEX = "ix_audit_expectations_open_deadline"
RUNS_EVERY = 12  # expectations per run: about what an 8-step run declares

LOAD_SQL = """
INSERT INTO audit_expectations
    (id, run_id, tenant_id, domain, action, deadline, created_at, acked_at, withdrawn_at)
SELECT md5(i::text)::uuid::text,
       'bench-run-' || (i / {every}),
       'bench',
       'traces',
       'record_step:' || (i % {every}),
       CASE WHEN i % 100 = 99 THEN :as_of + interval '1 hour'
            ELSE :as_of - (i % 86400) * interval '1 second' - interval '1 second' END,
       :as_of - interval '2 days',
       CASE WHEN i % 100 < 98 THEN :as_of - interval '1 day' END,
       NULL
FROM generate_series(1, :rows) AS i
"""


def with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def dedicated_schema(url: str) -> Iterator[str]:
    """A fresh schema, dropped with everything in it on the way out."""
    schema = f"bench_stale_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def load(engine: Engine, rows: int, as_of: datetime) -> float:
    """Create the table (with its indexes) and bulk-load ``rows`` rows; returns seconds."""
    began = time.perf_counter()
    with engine.begin() as conn:
        AuditExpectation.__table__.create(conn)
        conn.execute(text(LOAD_SQL.format(every=RUNS_EVERY)), {"as_of": as_of, "rows": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE audit_expectations"))
    return time.perf_counter() - began


def timed(fn: Callable[[], object]) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


def scan_all(session: Session, as_of: datetime, limit: int) -> int:
    """Page through every overdue row; returns how many there were."""
    total, after = 0, None
    while True:
        page = overdue_page(session, as_of, after, limit)
        total += len(page.rows)
        after = page.last
        if after is None:
            return total


def plan(session: Session, as_of: datetime, limit: int) -> str:
    compiled = overdue_statement(as_of, None, limit).compile(
        dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    lines = session.execute(text(f"EXPLAIN {compiled}")).scalars().all()
    return "\n".join(lines)


def sizes(session: Session) -> dict[str, float]:
    mb = 1024 * 1024
    q = "SELECT pg_relation_size(to_regclass(:name))"
    table = session.execute(text(q), {"name": "audit_expectations"}).scalar_one()
    index = session.execute(text(q), {"name": PARTIAL_INDEX}).scalar_one()
    return {"table_mb": round(table / mb, 1), "partial_index_mb": round(index / mb, 2)}


def warm(engine: Engine, as_of: datetime, limit: int, repeats: int) -> tuple[list, list, int]:
    """(first-page ms samples, all-overdue ms samples, overdue rows) on one connection."""
    first, every, count = [], [], 0
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        scan_all(session, as_of, limit)  # bring everything the scan reads into the cache
        for _ in range(repeats):
            first.append(timed(lambda: overdue_page(session, as_of, None, limit)))
        for _ in range(max(repeats // 10, 1)):
            began = time.perf_counter()
            count = scan_all(session, as_of, limit)
            every.append((time.perf_counter() - began) * 1000)
    return first, every, count


def cold(engine: Engine, scan: Callable[[Session], object]) -> float:
    """ms of ``scan`` as the first statement after connecting (SELECT 1 excepted)."""
    engine.dispose()
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        return timed(lambda: scan(session))


def drop_os_page_cache() -> bool:
    """Ask Linux to drop clean page-cache pages (root only); True if it did."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
        return True
    except OSError:
        return False


def stale_scan_bench(
    url: str,
    rows: int,
    page_size: int,
    restart: Callable[[], bool] | None,
    progress: Callable[[str], None],
    repeats: int = 50,
) -> dict:
    """Load, measure cold (after ``restart``) then warm, and drop the schema."""
    as_of = datetime.now(UTC).replace(microsecond=0)
    with dedicated_schema(url) as schema:
        engine = make_engine(with_search_path(url, schema))
        try:
            progress(f"  stale scan: loading {rows:,} expectation rows into schema {schema}")
            load_seconds = load(engine, rows, as_of)
            progress(f"  stale scan: loaded in {load_seconds:.1f}s; measuring")
            cold_mode = "new connection (server not restarted)"
            cold_ms = []
            for scan in (
                lambda session: overdue_page(session, as_of, None, page_size),
                lambda session: scan_all(session, as_of, page_size),
            ):
                if restart is not None:
                    dropped = restart()
                    cold_mode = "server restarted" + (" + OS page cache dropped" if dropped else "")
                cold_ms.append(cold(engine, scan))
            warm_first, warm_all, overdue = warm(engine, as_of, page_size, repeats)
            with Session(engine) as session:
                explain = plan(session, as_of, page_size)
                size = sizes(session)
        finally:
            engine.dispose()
    return {
        "rows": rows,
        "overdue_rows": overdue,
        "page_size": page_size,
        "load_seconds": round(load_seconds, 2),
        "first_page_warm_ms": round(percentile(warm_first, 50), 3),
        "first_page_warm_p99_ms": round(percentile(warm_first, 99), 3),
        "first_page_cold_ms": round(cold_ms[0], 3),
        "all_overdue_warm_ms": round(percentile(warm_all, 50), 2),
        "all_overdue_cold_ms": round(cold_ms[1], 2),
        "cold_mode": cold_mode,
        "uses_partial_index": PARTIAL_INDEX in explain,
        "plan": explain,
        **size,
        "pages": math.ceil(overdue / page_size) if overdue else 0,
    }
