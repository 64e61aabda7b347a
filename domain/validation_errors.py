"""The one formatter of a validation error: one line that names each field.

Used by the workflows, the CLI, the API and the skills alike, so that a bad input reads the
same wherever it is refused: ``steps.0.input.url: Input should be a valid URL``.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


def field_path(loc: Iterable[Any], default: str = "input") -> str:
    return ".".join(str(part) for part in loc) or default


def describe_errors(errors: Iterable[Mapping[str, Any]], default: str = "input") -> str:
    """``path: message; path: message`` for pydantic-style error dicts; a check of a whole
    model (no path) whose message names its own places is given as it is."""
    return "; ".join(_line(e, default) for e in errors)


def _line(error: Mapping[str, Any], default: str) -> str:
    message = error["msg"]
    if not tuple(error["loc"]) and error.get("type") == "value_error":
        return message.removeprefix("Value error, ")
    return f"{field_path(error['loc'], default)}: {message}"


def describe(exc: ValidationError, default: str = "input") -> str:
    """One line naming every field the validation refused."""
    return describe_errors(exc.errors(), default)


def describe_first(exc: ValidationError, default: str = "input") -> str:
    """The first refusal only (for messages nested in another one)."""
    return describe_errors(exc.errors()[:1], default)
