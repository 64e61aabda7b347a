"""Data that flows between steps: a step's input may reference an earlier step's output.

A step may have an ``id``; anywhere in a later step's input, an object that is exactly
``{"$ref": "steps.<id>.output"}`` — or, deeper, ``"steps.<id>.output.body.items.0"`` (keys
and list indexes separated by dots) — stands for that value of that step's recorded output.
The workflow resolves references deterministically from the recorded results just before
the step runs (``resolve``); the step activity receives, and the trace step records and
hashes, the resolved input, so the chain proves what was actually sent.

Checked at start, before anything is written (``problems``): a malformed reference, one to
an unknown step, to the step itself or to a later one (so there can be no cycle), and two
steps with the same id are refused with the reference and its place named. A path that the
output does not have is found only when the output is known: that step fails without
running, naming the reference (``RefError``).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

REF = "$ref"
STEP_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_TARGET = re.compile(r"^steps\.([a-z][a-z0-9_]{0,62})\.output((?:\.[^.]+)*)$")


class RefError(ValueError):
    """A reference that cannot be resolved (its message names it)."""


@dataclass(frozen=True)
class Ref:
    where: str  # the place in the input, e.g. "input.variables.body"
    target: str  # the text of the reference
    step_id: str | None  # None: malformed
    path: tuple[str, ...] = ()


def _ref_of(value: Any) -> str | None:
    if isinstance(value, dict) and REF in value:
        return value[REF] if len(value) == 1 and isinstance(value[REF], str) else ""
    return None


def refs_in(value: Any, where: str = "input") -> list[Ref]:
    """Every reference in ``value``, depth first."""
    target = _ref_of(value)
    if target is not None:
        match = _TARGET.match(target)
        if match is None:
            return [Ref(where, target, None)]
        path = tuple(p for p in match.group(2).split(".") if p)
        return [Ref(where, target, match.group(1), path)]
    if isinstance(value, dict):
        return [r for k, v in value.items() for r in refs_in(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [r for i, v in enumerate(value) for r in refs_in(v, f"{where}.{i}")]
    return []


def problems(steps: Sequence[tuple[str | None, dict[str, Any]]]) -> list[str]:
    """Why the references of these steps (id, input) cannot work, each naming its place."""
    found: list[str] = []
    position: dict[str, int] = {}
    for index, (step_id, _) in enumerate(steps):
        if step_id is not None:
            if step_id in position:
                found.append(f"steps.{index}.id: {step_id!r} is already the id of step "
                             f"{position[step_id]}")  # fmt: skip
            else:
                position[step_id] = index
    for index, (_, data) in enumerate(steps):
        for ref in refs_in(data, f"steps.{index}.input"):
            if ref.step_id is None:
                found.append(f"{ref.where}: malformed reference {ref.target!r} (expected "
                             f'{{"{REF}": "steps.<id>.output[.<key>...]"}})')  # fmt: skip
            elif ref.step_id not in position:
                known = ", ".join(sorted(position)) or "none"
                found.append(f"{ref.where}: reference {ref.target!r} names no step "
                             f"(step ids: {known})")  # fmt: skip
            elif position[ref.step_id] >= index:
                which = "itself" if position[ref.step_id] == index else "a later step"
                found.append(f"{ref.where}: reference {ref.target!r} names {which} "
                             f"(step {position[ref.step_id]}); only earlier steps' outputs "
                             "can be used")  # fmt: skip
    return found


def referenced_ids(inputs: Sequence[dict[str, Any]]) -> set[str]:
    """The ids of the steps whose outputs some step references."""
    return {r.step_id for data in inputs for r in refs_in(data) if r.step_id is not None}


def resolve(value: Any, outputs: dict[str, Any], where: str = "input") -> Any:
    """``value`` with every reference replaced by what it names in ``outputs`` (step id →
    recorded output); a copy, ``value`` is left as it is."""
    target = _ref_of(value)
    if target is not None:
        match = _TARGET.match(target)
        if match is None or match.group(1) not in outputs:
            raise RefError(f"{where}: reference {target!r} cannot be resolved")
        found: Any = outputs[match.group(1)]
        for key in (p for p in match.group(2).split(".") if p):
            found = _step_into(found, key, target, where)
        return found
    if isinstance(value, dict):
        return {k: resolve(v, outputs, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def _step_into(found: Any, key: str, target: str, where: str) -> Any:
    if isinstance(found, dict) and key in found:
        return found[key]
    if isinstance(found, list) and key.isdigit() and int(key) < len(found):
        return found[int(key)]
    kind = type(found).__name__ if not isinstance(found, dict | list) else (
        "an object without that key" if isinstance(found, dict) else
        f"a list of {len(found)}")  # fmt: skip
    raise RefError(f"{where}: reference {target!r}: no {key!r} in the output (it is {kind})")
