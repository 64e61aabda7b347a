"""Migrations go up to head and back down to base on both databases, with no drift."""

import pytest
from alembic import command
from sqlalchemy import inspect

from db import migrate
from db.engine import make_engine

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_check_downgrade(backend, fresh_database):
    engine = make_engine(fresh_database(backend))
    migrate.upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "run_phase_transitions", "idempotency_ledger", "audit_expectations",
            "domain_acks", "audit_ledger", "incidents", "trace_steps"} <= tables  # fmt: skip
    with engine.begin() as connection:
        config = migrate.alembic_config(engine)
        config.attributes["connection"] = connection
        command.check(config)  # models and migrations agree
    migrate.downgrade(engine)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)  # and up again
    engine.dispose()
