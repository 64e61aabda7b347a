"""Alembic environment: runs against the URL given by db.migrate or DATABASE_URL."""

from alembic import context

from db.engine import make_engine
from db.models import Base

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url:
        return url
    from runtime.settings import Settings  # the CLI path: alembic -c db/alembic.ini

    return Settings().resolved_database_url()


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
