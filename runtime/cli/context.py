"""What a CLI command gets: settings, and lazily a database session factory and a client."""

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine
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
        if self._engine is None:
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
