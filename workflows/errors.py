"""How RunWorkflow reads the errors it meets: validation, cancellation, activity failures."""

import asyncio
from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ActivityError, CancelledError

from domain.validation_errors import describe


class GovernanceFailure(Exception):
    """A governance step failed for a reason other than an activity error."""


def describe_validation_error(exc: ValidationError) -> str:
    """domain.validation_errors.describe (the one formatter), named for the workflows."""
    return describe(exc)


def one_object(args: tuple[Any, ...]) -> tuple[dict[str, Any] | None, str | None]:
    """The single JSON object a workflow input or a message must be, or why it is not one:
    a missing payload, two payloads or a non-object never reach a typed handler (where they
    would fail the workflow task on every attempt)."""
    if len(args) != 1:
        got = "no payload" if not args else f"{len(args)} payloads"
        return None, f"expected one JSON object, got {got}"
    if not isinstance(args[0], dict):
        return None, f"expected a JSON object, got {json_type(args[0])}"
    return args[0], None


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def is_cancellation(exc: BaseException) -> bool:
    """The workflow was cancelled, seen directly or through a cancelled activity."""
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return isinstance(exc, asyncio.CancelledError | CancelledError)


def root_cause(exc: BaseException) -> str:
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__
