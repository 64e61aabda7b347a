"""What a CLI command gets: settings, and lazily a database session factory and a client;
and the few helpers the commands share (registering one, its --json flag, its output)."""

import inspect
import json
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from db.engine import make_session_factory
from runtime.payload_codec import process_codec
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
            # The claim check opens the database only when a payload needs it: a command
            # that meets no large payload never does (nor creates a missing one).
            codec = process_codec(self.settings, lambda: self.existing_sessions)
            self._client = await connect(address, self.settings.temporal_namespace, codec=codec)
        return self._client

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


# A parsed command: what cli.main runs, in one event loop, with the Context.
Job = Callable[[Context], Awaitable[None]]


def command(group: typer.Typer, name: str, help: str) -> Callable[[Callable], Callable]:
    """Make ``async def handler(ctx, **params)`` the command ``name`` of ``group``: typer
    parses the parameters after ``ctx`` and hands cli.main the handler to run."""

    def register(handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        signature = inspect.signature(handler)
        params = list(signature.parameters.values())[1:]

        def parse(**values: Any) -> Job:
            return lambda ctx: handler(ctx, **values)

        parse.__signature__ = signature.replace(parameters=params)
        parse.__annotations__ = {p.name: p.annotation for p in params}
        group.command(name, help=help, short_help=help)(parse)
        return handler

    return register


# --json, on every command that prints data.
Json = Annotated[bool, typer.Option("--json", help="print JSON")]


def exclusive(*names: str) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A callback refusing its flag when another of the parameters ``names`` is given too."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        given = [n for n in names if n != param.name and ctx.params.get(n)]
        if value and given:
            raise typer.BadParameter(f"not allowed with argument --{given[0].replace('_', '-')}")
        return value

    return check


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


def output(as_json: bool, data: Any, text: Callable[[Any], str] | None = None) -> None:
    """Print ``data`` as JSON with --json, else as ``text(data)`` (or JSON if no text)."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if as_json or text is None:
        json.dump(data, sys.stdout, indent=2, default=_default)
        sys.stdout.write("\n")
    else:
        print(text(data))
