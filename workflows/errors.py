"""How RunWorkflow reads the errors it meets: validation, cancellation, activity failures."""

import asyncio

from pydantic import ValidationError
from temporalio.exceptions import ActivityError, CancelledError


class GovernanceFailure(Exception):
    """A governance step failed for a reason other than an activity error."""


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def is_cancellation(exc: BaseException) -> bool:
    """The workflow was cancelled, seen directly or through a cancelled activity."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return isinstance(exc, asyncio.CancelledError | CancelledError)


def root_cause(exc: BaseException) -> str:
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__
