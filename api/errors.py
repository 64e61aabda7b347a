"""Error bodies the API can always encode, and that never echo a caller's input at length.

A 422 lists at most ``MAX_ERRORS`` errors as ``{"loc", "msg", "type"}`` (the offending
``input`` and pydantic's ``ctx`` are dropped) and a one-line ``error`` naming the fields;
every text is cut to ``MAX_ECHO_CHARS`` and made valid UTF-8 (a lone surrogate becomes
its ``\\udXXX`` escape), so the handler cannot fail on what it reports.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError

from domain.validation_errors import describe_errors

MAX_ECHO_CHARS = 200
MAX_ERRORS = 20


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` as valid UTF-8, cut to ``limit`` characters (marked with an ellipsis)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loc_part(part: Any) -> str | int:
    return part if isinstance(part, int) and not isinstance(part, bool) else clip(str(part))


def bounded_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error without its input: location, message and type, each bounded."""
    return {
        "loc": [_loc_part(p) for p in error.get("loc", ())],
        "msg": clip(str(error.get("msg", ""))),
        "type": clip(str(error.get("type", "value_error"))),
    }


def describe(errors: list[dict[str, Any]]) -> str:
    """The one-line summary: ``loc: msg`` of each error, joined by ``; ``."""
    return describe_errors(errors, default="body")


def validation_response(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """A 422 naming each field (at most MAX_ERRORS of them, and how many more there were)."""
    every = list(errors)
    shown = [bounded_error(e) for e in every[:MAX_ERRORS]]
    summary = describe(shown)
    if len(every) > MAX_ERRORS:
        summary += f"; and {len(every) - MAX_ERRORS} more errors"
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": shown, "error": summary},
    )


def error_response(
    code: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A one-line ``{"detail": ...}`` error (the shape of FastAPI's HTTPException bodies)."""
    return JSONResponse(status_code=code, content={"detail": clip(detail, 500)}, headers=headers)


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return validation_response(exc.errors())


async def data_error(_: Request, exc: DataError) -> JSONResponse:
    """A value the database cannot store (the models bound what they can): the client's."""
    lines = str(exc.orig or exc).strip().splitlines() or ["refused by the database"]
    reason = clip(lines[0])
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": f"a value does not fit the database: {reason}", "error": reason},
    )
