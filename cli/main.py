"""Entry point of starter.py: parse, run, turn every refusal into one line + exit code."""

import asyncio
import logging
import os
import sys

import typer
from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from cli import (
    admin,
    apikeys,
    bench,
    candidates,
    incidents,
    inspect,
    reconcile,
    runs,
    secrets,
    sinks,
    skills,
    tenant,
)
from cli.context import CliError, Context
from db.engine import DatabaseConfigError
from runtime.embedded_temporal import TemporalConfigError
from runtime.settings import Settings

app = typer.Typer(
    help="Operate governed-runs: start, control and inspect runs.",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# In the order of `starter.py --help`; a module's unnamed Typer adds its commands here.
for group in (runs.app, tenant.app, admin.policy, admin.app, candidates.app, incidents.app,
              inspect.app, apikeys.app, reconcile.app, bench.app, secrets.app,
              sinks.app, skills.app):  # fmt: skip
    app.add_typer(group)


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what the closed pipe refused is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    try:
        job = app(args=argv, prog_name="starter.py", standalone_mode=False)
    except typer.TyperException as exc:  # a usage error: the usage line and why, exit 2
        exc.show()
        return exc.exit_code
    if not callable(job):  # --help: typer printed it
        return job
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        ctx = Context(Settings())
    except ValidationError as exc:
        print(
            f"error: invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(job(ctx))
        return 0
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (DatabaseConfigError, TemporalConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkflowFailureError as exc:
        print(f"error: run failed: {exc.cause}", file=sys.stderr)
        return 1
    except RPCError as exc:
        print(f"error: Temporal refused the request: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `starter.py ... --json | head`: the reader has gone
        silence_stdout()
        return 1
    finally:
        ctx.close()
