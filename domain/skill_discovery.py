"""Discovery of the installed skills: the entry points of group ``governed_runs.skills``.

``installed_catalog()`` loads them once per process (the worker when it starts, the API
when its app is built, the CLI when a command first needs it) and keeps the catalog for
the life of the process: installing or removing a plugin takes a restart. Nothing here
runs at import time.

Each entry point must name a ``domain.skill_catalog.Skill`` whose name is the entry point's
name. One that fails to import, names something else or declares a bad skill is logged
(the entry point and the error) and left out, and the process starts without it; the
catalog lists it under ``failures`` (``starter.py skills`` shows it as failed to load). A
skill name already taken is refused for the later entry point: the built-in skills come
first, then the plugins by distribution name and entry-point name, so which one wins does
not depend on the order of sys.path. The agent step (domain.skill_catalog.AGENT) is in every
catalog, ahead of them all: it is RunWorkflow's own, registered by no entry point.
"""

import functools
import logging
from collections.abc import Iterable
from importlib import metadata

from domain.skill_catalog import (
    BUILT_IN,
    BUILT_IN_CATALOG,
    ENTRY_POINT_GROUP,
    PROJECT_DISTRIBUTION,
    CatalogEntry,
    LoadFailure,
    Skill,
    SkillCatalog,
    workflow_entries,
)

log = logging.getLogger(__name__)


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def distribution_of(ep: metadata.EntryPoint) -> metadata.Distribution | None:
    return getattr(ep, "dist", None)


def source_of(ep: metadata.EntryPoint) -> str:
    """BUILT_IN for this project's own entry points, else the distribution's name."""
    dist = distribution_of(ep)
    if dist is None:
        return "unknown distribution"
    name = dist.metadata["Name"] or "unknown distribution"
    return BUILT_IN if _normalized(name) == PROJECT_DISTRIBUTION else name


def _version_of(ep: metadata.EntryPoint) -> str:
    dist = distribution_of(ep)
    return (dist.version if dist is not None else None) or "unknown"


def _project_version() -> str:
    try:
        return metadata.version(PROJECT_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _label(ep: metadata.EntryPoint) -> str:
    return f"{ep.name} = {ep.value}"


def _load_order(ep: metadata.EntryPoint) -> tuple[bool, str, str]:
    """The built-in skills first, then by distribution and entry-point name."""
    return (source_of(ep) != BUILT_IN, source_of(ep), ep.name)


def discover(entry_points: Iterable[metadata.EntryPoint] | None = None) -> SkillCatalog:
    """The catalog of ``entry_points`` (default: the group's, of every installed
    distribution), each failure logged and listed."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    ordered = sorted(entry_points, key=_load_order)
    entries = workflow_entries(_project_version())  # the agent: before any entry point
    if not any(source_of(ep) == BUILT_IN for ep in ordered):
        _add_unregistered_built_ins(entries)
    failures: list[LoadFailure] = []
    for ep in ordered:
        entry, error = _load(ep, entries)
        if entry is not None:
            entries[entry.name] = entry
        else:
            failures.append(LoadFailure(_label(ep), source_of(ep), error or "not loaded"))
            log.error("skill entry point %r of %s not loaded: %s",
                      _label(ep), source_of(ep), error)  # fmt: skip
    return SkillCatalog(entries, tuple(failures))


def _load(
    ep: metadata.EntryPoint, known: dict[str, CatalogEntry]
) -> tuple[CatalogEntry | None, str | None]:
    try:
        skill = ep.load()
    except Exception as exc:  # whatever the plugin's import raised: named, and left out
        return None, f"failed to import: {type(exc).__name__}: {exc}"
    if not isinstance(skill, Skill):
        return None, (f"names a {type(skill).__name__}, not a domain.skill_catalog.Skill")
    problems = skill.problems()
    if skill.name != ep.name:
        problems.append(f"declares skill {skill.name!r}, not {ep.name!r} (the entry point's name)")
    if problems:
        return None, "; ".join(problems)
    taken = known.get(skill.name)
    if taken is not None:
        return None, (f"duplicate skill name {skill.name!r}: already registered by "
                      f"{taken.source} ({taken.entry_point})")  # fmt: skip
    version = skill.version or _version_of(ep)
    return CatalogEntry(skill, source_of(ep), version, _label(ep)), None


def _add_unregistered_built_ins(entries: dict[str, CatalogEntry]) -> None:
    """A checkout whose install predates the entry points still has its built-in skills
    (with a warning naming the fix), ahead of the plugins like registered ones."""
    log.warning("the built-in skills are not registered as entry points of %s "
                "(reinstall the project: make install); using them as declared",
                ENTRY_POINT_GROUP)  # fmt: skip
    entries.update(BUILT_IN_CATALOG.entries)


@functools.cache
def installed_catalog() -> SkillCatalog:
    """The installed skills, discovered on the first call of the process."""
    return discover()
