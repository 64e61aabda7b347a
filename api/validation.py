"""Checks of request bodies beyond their schema, answered like any validation error (422).

PostgreSQL refuses NUL characters in text and JSON, timestamps must fit the UTC range,
and Temporal refuses a payload over 2 MB: such values are refused at the edge, naming the
field, before anything is written or started (rather than failing later in an activity).
What no JSON body may hold at all (NaN, lone surrogates, overlong strings) is refused
earlier, while the body is parsed (``api.json_body``).
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

MAX_WORKFLOW_INPUT_BYTES = 1_500_000
"""A workflow input at most this long once encoded (Temporal's payload limit is 2 MB)."""


def _nul_paths(value: Any, path: tuple) -> Iterator[tuple]:
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                yield (*path, key)
            yield from _nul_paths(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*path, index))


def _datetime_paths(value: Any, path: tuple) -> Iterator[tuple]:
    if isinstance(value, datetime):
        try:
            value.astimezone(UTC)
        except OverflowError:
            yield path
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from _datetime_paths(getattr(value, name), (*path, info.alias or name))


def check_body(body: BaseModel | None) -> None:
    """Raise a 422 naming each field that holds a NUL character or an out-of-range time."""
    if body is None:
        return
    errors = [
        {"loc": ("body", *p), "msg": "NUL characters are not allowed", "type": "value_error"}
        for p in _nul_paths(body.model_dump(mode="python", by_alias=True), ())
    ]
    errors += [
        {"loc": ("body", *p), "msg": "time is out of range in UTC", "type": "value_error"}
        for p in _datetime_paths(body, ())
    ]
    if errors:
        raise RequestValidationError(errors)


def check_encoded_size(payload: dict[str, Any], limit: int = MAX_WORKFLOW_INPUT_BYTES) -> None:
    """Raise a 422 when ``payload`` (a workflow input) is too long for a Temporal payload."""
    size = len(pydantic_core.to_json(payload))
    if size > limit:
        message = f"the input is {size} bytes once encoded; at most {limit}"
        raise RequestValidationError([{"loc": ("body",), "msg": message, "type": "value_error"}])
