"""Strict reading of JSON request bodies: refuse what ``json.loads`` accepts but no store holds.

Each fault is a validation error naming its field (``loc`` from ``body``):

- the non-standard tokens ``NaN``, ``Infinity`` and ``-Infinity``, and numbers that
  overflow to infinity (``1e400``): neither the database nor the 422 itself can encode them;
- strings and keys holding a lone surrogate (``"\\ud800"``): not encodable as UTF-8;
- strings and keys longer than ``MAX_STRING_CHARS`` characters;
- nesting deeper than ``MAX_DEPTH`` levels.

A body that is not JSON at all is one error at the position of the fault.
"""

import json
import math
from collections.abc import Iterator
from typing import Any

MAX_STRING_CHARS = 100_000
MAX_DEPTH = 64
TOO_DEEP = f"nesting is deeper than {MAX_DEPTH} levels"


class _NonFinite:
    """Stands in, while parsing, for a NaN/Infinity token or a number that overflows."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _finite_float(token: str) -> float | _NonFinite:
    value = float(token)
    return _NonFinite(token) if math.isinf(value) else value


def _error(path: tuple, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ("body", *path), "msg": msg, "type": kind}


def text_fault(text: str) -> str | None:
    """Why a string cannot be taken (too long, or not valid Unicode); None when it can."""
    if len(text) > MAX_STRING_CHARS:
        return f"text is longer than {MAX_STRING_CHARS} characters ({len(text)})"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text holds a lone surrogate (not valid Unicode)"
    return None


CONTAINERS = (dict, list)
SUSPECTS = (str, _NonFinite)  # the only scalars that can be at fault


def _value_fault(value: Any) -> str | None:
    if isinstance(value, str):
        return text_fault(value)
    if isinstance(value, _NonFinite):
        return f"{value.token[:20]} is not a finite JSON number"
    return None


def _entries(container: dict | list) -> Iterator[tuple[Any, Any]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def value_faults(value: Any) -> list[dict[str, Any]]:
    """The faults of a parsed body (an iterative walk: no recursion, whatever the depth;
    a path is built only for a container or a fault)."""
    if not isinstance(value, dict | list):
        fault = _value_fault(value)
        return [_error((), fault)] if fault else []
    faults: list[dict[str, Any]] = []
    pending: list[tuple[tuple, dict | list]] = [((), value)]
    while pending:
        path, container = pending.pop()
        if len(path) >= MAX_DEPTH:
            faults.append(_error(path, TOO_DEEP))  # what it holds is not walked
            continue
        for key, child in _entries(container):
            if isinstance(key, str) and (key_fault := text_fault(key)):
                faults.append(_error((*path, key), f"key: {key_fault}"))
            elif isinstance(child, CONTAINERS):
                pending.append(((*path, key), child))
            elif isinstance(child, SUSPECTS) and (fault := _value_fault(child)):
                faults.append(_error((*path, key), fault))
    return faults


def _parse(raw: bytes) -> Any:
    return json.loads(raw, parse_constant=_NonFinite, parse_float=_finite_float)


def body_faults(raw: bytes) -> list[dict[str, Any]]:
    """The faults of a JSON request body, each naming its field; [] when it is acceptable."""
    try:
        value = _parse(raw)
    except json.JSONDecodeError as exc:
        return [_error((exc.pos,), f"JSON decode error: {exc.msg}", "json_invalid")]
    except UnicodeDecodeError:
        return [_error((), "the body is not valid UTF-8", "json_invalid")]
    except RecursionError:
        return [_error((), TOO_DEEP, "json_invalid")]
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return [_error((), f"JSON decode error: {exc}", "json_invalid")]
    return value_faults(value)
