"""Alembic environment: runs against the URL db.migrate gives it, or, from the alembic
command line, ``-x url=...`` (settings are read at the edges, never here)."""

from alembic import context

from db.engine import make_engine
from db.models import Base

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit(
            "error: no database URL: run migrations through the worker (it migrates at start) "
            "or `alembic -c db/alembic.ini -x url=postgresql+psycopg://... upgrade heads`"
        )
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=Base.metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:  # noqa: ANN001
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
