"""SQLite writers queue on the process's write lock; readers never wait for it."""

import sqlite3
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from db import sqlite_writer
from db.engine import make_engine, make_session_factory, reading


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    factory = make_session_factory(engine)
    with factory.begin() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    yield factory
    engine.dispose()


def count(sessions) -> int:
    with reading(sessions) as session:
        return session.execute(text("SELECT count(*) FROM t")).scalar_one()


def test_concurrent_writers_all_commit(sessions):
    def write() -> None:
        for _ in range(50):
            with sessions.begin() as session:
                session.execute(text("INSERT INTO t VALUES (1)"))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(sessions) == 400


def test_the_lock_is_released_by_commit_rollback_and_errors(sessions):
    with sessions.begin() as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(OperationalError, match="no such table"), sessions.begin() as session:
        session.execute(text("INSERT INTO missing VALUES (1)"))
    with sessions() as session:  # begun, then closed without commit: rolled back
        session.execute(text("INSERT INTO t VALUES (2)"))
    with sessions.begin() as session:
        session.execute(text("INSERT INTO t VALUES (3)"))
    assert count(sessions) == 2


def test_a_reader_does_not_wait_for_a_writer(sessions):
    with sessions.begin() as writer:
        writer.execute(text("INSERT INTO t VALUES (1)"))
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.append(count(sessions)))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive(), "the reader waited for the writer"
        assert seen == [0], "the reader sees the last committed state"
    assert count(sessions) == 1


def test_a_writer_that_cannot_get_the_lock_fails_with_a_clear_error(sessions, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "WAIT_SECONDS", 0.2)
    errors: list[str] = []

    def second_writer() -> None:
        try:
            with sessions.begin() as session:
                session.execute(text("INSERT INTO t VALUES (2)"))
        except sqlite3.OperationalError as exc:  # raised before SQLAlchemy sends BEGIN
            errors.append(str(exc))

    with sessions.begin() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        other = threading.Thread(target=second_writer)
        other.start()
        other.join(timeout=5)
    assert errors == ["database is locked: no write lock after 0.2 s in this process"]
    assert count(sessions) == 1
