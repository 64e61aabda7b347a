"""What a CLI command gets: settings, and lazily a database session factory and a client."""

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from db.engine import make_session_factory
from runtime.settings import Settings
from runtime.stack import open_database
from runtime.temporal_client import connect


class CliError(Exception):
    """A refused command; its message is the one line the operator sees."""


@dataclass
class Context:
    settings: Settings
    _engine: Engine | None = None
    _client: Client | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions of the database, created and migrated if need be (write commands)."""
        return self._sessions(create=True)

    @property
    def existing_sessions(self) -> sessionmaker[Session]:
        """Sessions of a database that exists (read commands never create one)."""
        return self._sessions(create=False)

    def _sessions(self, *, create: bool) -> sessionmaker[Session]:
        if self._engine is None:
            if not create:
                require_database(self.settings)
            self._engine = open_database(self.settings)
            self.closers.append(self._engine.dispose)
        return make_session_factory(self._engine)

    async def client(self) -> Client:
        if self._client is None:
            address = self.settings.temporal_address or f"127.0.0.1:{self.settings.temporal_port}"
            self._client = await connect(address, self.settings.temporal_namespace)
        return self._client

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def require_database(settings: Settings) -> None:
    """Refuse, rather than create, a SQLite database that is not there."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    if not Path(url.database).exists():
        raise CliError(
            f"no database at {url.database}: start the worker first (make run), "
            "or set DATABASE_URL / DATA_DIR"
        )


def tenant_hint(message: str) -> str:
    """An unknown-tenant refusal, with how to create the tenant."""
    match = re.fullmatch(r"unknown tenant '([^']*)'", message)
    if match is None:
        return message
    return f"{message} (create it: starter.py tenant add {match.group(1)})"


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def output(args: Any, data: Any, text: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as JSON with --json, else as ``text(data)`` (or JSON if no text)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if getattr(args, "json", False) or text is None:
        json.dump(data, sys.stdout, indent=2, default=_default)
        sys.stdout.write("\n")
    else:
        print(text(data))


def add_json_flag(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
