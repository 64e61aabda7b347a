"""The worker's skills: the catalog (domain.skill_catalog), with each skill's function.

``SkillRegistry`` resolves the functions the catalog names (the built-in skills name
theirs as ``"module:attribute"``) once, when the worker is built; a skill whose function
cannot be resolved is logged and left out. ``run`` is what a step calls, in its own thread
(activities.steps): the input validated against the skill's model, the function called
(an async one in an event loop of its own, cancelled at the skill's time limit), and what
it returns made a SkillOutput. Every way a skill can fail is a SkillError that names it:
an exception it raises (its type and message; final, unless it raised a retryable
SkillError itself), a value that is not JSON, an input that does not fit.
"""

import asyncio
import importlib
import inspect
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.errors import SkillError
from domain.skill_catalog import CatalogEntry, CostKind, SkillCatalog
from domain.skill_discovery import installed_catalog
from domain.validation_errors import describe_errors

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 256 * 1024
"""The most JSON a step's output may hold (it is recorded in the run's history)."""


def resolve(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable, or the attribute a ``"module:attribute"`` string names."""
    if not isinstance(ref, str):
        return ref
    module, _, attribute = ref.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{ref} is not callable")
    return found


@dataclass(frozen=True)
class Runnable:
    """A catalogued skill with its resolved function (and reservation, when metered)."""

    entry: CatalogEntry
    run: Callable[..., Any]
    reserve: Callable[..., Decimal] | None = None


class SkillRegistry:
    """Skill name → the function that runs it, for the skills of ``catalog`` (default:
    the installed one)."""

    def __init__(self, catalog: SkillCatalog | None = None) -> None:
        self.catalog = catalog if catalog is not None else installed_catalog()
        self._skills: dict[str, Runnable] = {}
        for name, entry in self.catalog.entries.items():
            try:
                reserve = entry.skill.cost.reserve
                self._skills[name] = Runnable(
                    entry,
                    resolve(entry.skill.run),
                    resolve(reserve) if entry.skill.cost.kind == CostKind.METERED else None,
                )
            except Exception as exc:  # named, and the worker starts without it
                log.error("skill %r (%s) not loaded: cannot resolve its function: %s: %s",
                          name, entry.entry_point, type(exc).__name__, exc)  # fmt: skip
        log.info("skills: %s", ", ".join(f"{n} ({self._skills[n].entry.source})"
                                         for n in self.names))  # fmt: skip

    @property
    def names(self) -> list[str]:
        return sorted(self._skills)

    def calls_out(self, name: str) -> bool:
        found = self._skills.get(name)
        return found is not None and found.entry.skill.calls_out

    def time_limit(self, name: str) -> float | None:
        """Seconds the skill may run before it counts as hung (None: not installed)."""
        found = self._skills.get(name)
        return None if found is None else float(found.entry.skill.timeout_seconds)

    def reserve(self, name: str, raw_input: dict[str, Any], ctx: SkillContext) -> Decimal:
        """The most a step of this skill can cost, judged against the budget before it runs
        (its cost model: the base cost, its fixed amount, or its own worst case for the
        input). An unknown skill, or an input that does not validate, reserves the base
        cost (the step then fails without running the skill); a reservation that raises is
        a final SkillError."""
        found = self._skills.get(name)
        if found is None:
            return ctx.base_cost
        try:
            data = found.entry.skill.input.model_validate(raw_input)
        except ValidationError:
            return ctx.base_cost
        cost = found.entry.skill.cost
        if cost.kind == CostKind.FIXED and cost.amount is not None:
            return cost.amount
        if found.reserve is None:
            return ctx.base_cost
        try:
            return Decimal(found.reserve(data, ctx))
        except Exception as exc:
            raise SkillError(f"skill {name!r}: its reservation raised "
                             f"{type(exc).__name__}: {exc}", retryable=False) from None  # fmt: skip

    def run(
        self, name: str, raw_input: dict[str, Any], ctx: SkillContext, reserved: Decimal
    ) -> SkillOutput:
        """Run the skill on ``raw_input`` (its secrets substituted); SkillError if it fails.
        What it costs is the SkillOutput's cost if it returns one, else ``reserved`` (the
        reservation its cost model made before the step)."""
        found = self._skills.get(name)
        if found is None:  # another worker of the task queue may have it: retryable
            raise SkillError(f"skill {name!r} is not installed on this worker "
                             f"(installed: {', '.join(self.names)})", retryable=True)  # fmt: skip
        data = _validated(found.entry, raw_input)
        args = (data, ctx) if found.entry.skill.with_context else (data,)
        try:
            returned = found.run(*args)
            if inspect.isawaitable(returned):
                limit = float(found.entry.skill.timeout_seconds)
                returned = asyncio.run(_awaited(returned, limit))
        except SkillError:
            raise
        except TimeoutError:
            raise SkillError(f"skill {name!r} did not return within "
                             f"{found.entry.skill.timeout_seconds:g} s (hung)",
                             retryable=False) from None  # fmt: skip
        except Exception as exc:
            raise SkillError(f"skill {name!r} raised {type(exc).__name__}: {exc}",
                             retryable=False) from None  # fmt: skip
        return _output(name, returned, reserved)


def _output(name: str, returned: Any, reserved: Decimal) -> SkillOutput:
    if isinstance(returned, SkillOutput):
        return SkillOutput(json_object(name, returned.output), returned.cost, returned.details)
    if isinstance(returned, BaseModel):
        returned = returned.model_dump(mode="json")
    output = returned if isinstance(returned, dict) else {"result": returned}
    return SkillOutput(json_object(name, output), reserved)


async def _awaited(awaitable: Any, limit: float) -> Any:
    return await asyncio.wait_for(awaitable, limit)


def _validated(entry: CatalogEntry, raw_input: dict[str, Any]) -> BaseModel:
    """The skill's input model. The input was checked as written when the run opened; once
    secrets are substituted it may not validate: a failure names the fields, never their
    values."""
    try:
        return entry.skill.input.model_validate(raw_input)
    except ValidationError as exc:
        problems = describe_errors(exc.errors(include_input=False, include_url=False))
        raise SkillError(f"{entry.name}: invalid input: {problems}", retryable=False) from None


def json_object(skill: str, output: dict[str, Any]) -> dict[str, Any]:
    """``output`` if it is a JSON object the database and Temporal can hold; else a final
    SkillError naming where it is not."""
    problem = _not_json(output, "output")
    if problem is None:
        size = len(_encoded(output))
        if size > MAX_OUTPUT_BYTES:
            problem = f"output is {size} bytes of JSON; at most {MAX_OUTPUT_BYTES}"
    if problem is not None:
        raise SkillError(f"skill {skill!r} returned a value that is not JSON: {problem}",
                         retryable=False)  # fmt: skip
    return output


def _encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()


def _not_json(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value} (not a JSON number)"
    if isinstance(value, str):
        return f"{where} holds a NUL character (no database stores it)" if "\x00" in value else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _not_json(item, f"{where}[{index}]")
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            problem = _not_json(key, f"{where} key") or _not_json(item, f"{where}.{key}")
            if problem is not None:
                return problem
        return None
    return f"{where} is a {type(value).__name__}"
