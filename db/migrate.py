"""Run Alembic migrations programmatically (used by the worker, the starter and tests).

On PostgreSQL the upgrade holds a transaction-level advisory lock: several workers
started at once against an empty database migrate it once, one after the other (the
others wait, then find it at head), instead of racing on ``alembic_version`` and
``pg_type``. SQLite serialises writers on its own.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text

_HERE = Path(__file__).parent


def alembic_config(engine: Engine) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.attributes["url"] = engine.url.render_as_string(hide_password=False)
    return config


# Any constant unique to this application: pg_advisory_xact_lock's key.
MIGRATION_LOCK_KEY = 0x676F7672756E73  # "govruns"


def _lock_migrations(connection: Connection) -> None:
    """Hold the migration lock until this transaction ends (PostgreSQL only)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "heads") -> None:
    with engine.begin() as connection:
        _lock_migrations(connection)
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    with engine.begin() as connection:
        _lock_migrations(connection)
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
