"""Engines and sessions for SQLite (embedded default) and PostgreSQL (scale path)."""

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import sqlite_writer

# A session opened with this execution option only reads: on SQLite it begins a deferred
# transaction (a WAL snapshot, no write lock) instead of BEGIN IMMEDIATE.
READ_ONLY_OPTION = "governed_runs_read_only"
READ_ONLY = {READ_ONLY_OPTION: True}


class DatabaseConfigError(RuntimeError):
    """DATABASE_URL is malformed or the database cannot be reached."""


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine tuned for its backend; raises DatabaseConfigError for a bad URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseConfigError(f"DATABASE_URL is not a valid SQLAlchemy URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseConfigError(
            f"DATABASE_URL uses {parsed.get_backend_name()!r}; supported: sqlite, postgresql"
        )
    try:
        return create_engine(
            url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True
        )
    except (ArgumentError, ImportError) as exc:
        raise DatabaseConfigError(f"DATABASE_URL cannot be used: {exc}") from exc


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = {
        "timeout": 30,
        "check_same_thread": False,
        "factory": sqlite_writer.connection_factory(database or ":memory:"),
    }
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):  # noqa: ANN001, ANN202
        # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE: a deferred transaction
        # that later upgrades to a write lock can fail with SQLITE_BUSY at once.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):  # noqa: ANN001, ANN202
        if connection.get_execution_options().get(READ_ONLY_OPTION, False):
            connection.exec_driver_sql("BEGIN")
        else:  # BEGIN IMMEDIATE, queued behind this process's other writers
            connection.connection.dbapi_connection.begin_write()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def reading(sessions: sessionmaker[Session]) -> Session:
    """A session for reads only (see READ_ONLY): it never waits for SQLite's write lock."""
    return sessions(execution_options=READ_ONLY)


def check_connection(engine: Engine) -> None:
    """Fail fast with a one-line error naming DATABASE_URL if the database is unreachable."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
        safe = engine.url.render_as_string(hide_password=True)
        raise DatabaseConfigError(f"DATABASE_URL {safe} is unreachable: {reason}") from exc
