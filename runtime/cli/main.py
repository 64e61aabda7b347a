"""Entry point of starter.py: parse, dispatch, turn every refusal into one line + exit code."""

import argparse
import asyncio
import logging
import os
import sys
from types import ModuleType

from pydantic import ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError

from db.engine import DatabaseConfigError
from runtime.cli import egress, secrets
from runtime.cli.context import CliError, Context
from runtime.embedded_temporal import TemporalConfigError
from runtime.settings import Settings

# Registered after the caller's modules (``tenant egress`` extends runtime.cli.admin's
# ``tenant``), unless the caller lists them itself.
SECURITY_MODULES: list[ModuleType] = [secrets, egress]


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what the closed pipe refused is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def build_parser(modules: list[ModuleType]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="starter.py", description="Operate governed-runs: start, control and inspect runs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in [*modules, *(m for m in SECURITY_MODULES if m not in modules)]:
        module.register(sub)
    return parser


def main(modules: list[ModuleType], argv: list[str] | None = None) -> int:
    parser = build_parser(modules)
    args = parser.parse_args(argv)
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
        asyncio.run(args.handler(ctx, args))
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
