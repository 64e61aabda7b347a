"""Bring up what a process needs: Temporal (embedded or external), the database, a client."""

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from db import migrate
from db.engine import check_connection, make_engine, make_session_factory
from runtime.chat_completions import ChatCompletionsServer, embedded_chat_server
from runtime.embedded_temporal import EmbeddedTemporal, TemporalConfigError
from runtime.payload_codec import check_blob_retention, process_codec
from runtime.settings import Settings
from runtime.temporal_client import connect, connect_when_ready, ensure_search_attributes

log = logging.getLogger(__name__)


@dataclass
class Stack:
    settings: Settings
    client: Client
    engine: Engine
    sessions: sessionmaker[Session]
    address: str
    embedded: bool
    chat: ChatCompletionsServer | None = None  # the embedded stack's local model, if started


def open_database(settings: Settings, *, migrate_schema: bool = True) -> Engine:
    engine = make_engine(settings.resolved_database_url())
    check_connection(engine)
    if migrate_schema:
        migrate.upgrade(engine)
    return engine


def require_production_settings(settings: Settings) -> None:
    """ENVIRONMENT=production: a missing TEMPORAL_ADDRESS or DATABASE_URL is an error, not
    the embedded dev server and a SQLite file in DATA_DIR started silently."""
    if settings.environment != "production":
        return
    named = {"TEMPORAL_ADDRESS": settings.temporal_address, "DATABASE_URL": settings.database_url}
    missing = [name for name, value in named.items() if not value]
    if missing:
        raise TemporalConfigError(
            f"ENVIRONMENT=production needs {' and '.join(missing)} (the embedded dev server "
            "and the SQLite default are for development)"
        )


# How long an embedded server may take to become ready; a busy 2-core machine needs
# seconds between the port opening and the frontend answering.
READY_TIMEOUT = 120.0


@contextlib.asynccontextmanager
async def open_stack(settings: Settings, *, start_embedded: bool = True) -> AsyncIterator[Stack]:
    """Database first (fails fast on a bad DATABASE_URL), then Temporal. In production
    (ENVIRONMENT=production) both must be named: no embedded server, no SQLite default."""
    require_production_settings(settings)
    engine = open_database(settings)
    server: EmbeddedTemporal | None = None
    chat: ChatCompletionsServer | None = None
    try:
        address = settings.temporal_address
        if address is None:
            if not start_embedded:
                address = f"127.0.0.1:{settings.temporal_port}"
            else:
                server = EmbeddedTemporal(
                    settings.data_dir,
                    settings.temporal_port,
                    settings.temporal_ui_port,
                    settings.temporal_http_port,
                    settings.temporal_metrics_port,
                )
                address = server.start()
                chat = embedded_chat_server(settings)  # unless LLM_BASE_URL is configured
        sessions = make_session_factory(engine)
        codec = process_codec(settings, sessions)  # encryption, then the claim check
        if server is not None:  # ready means the namespace answers, not the port open
            client = await connect_when_ready(address, settings.temporal_namespace,
                                              READY_TIMEOUT, codec)  # fmt: skip
        else:
            client = await connect(address, settings.temporal_namespace, codec=codec)
        await ensure_search_attributes(client)
        await check_blob_retention(client, settings)
        yield Stack(settings, client, engine, sessions, address, server is not None, chat)
    finally:
        if chat is not None:
            chat.close()
        if server is not None:
            server.stop()
        engine.dispose()
