"""Distributions written for the tests: real ``.dist-info`` metadata in a directory, whose
entry points importlib.metadata finds like those of an installed package."""

from importlib import metadata
from pathlib import Path

from domain.skill_catalog import ENTRY_POINT_GROUP, SkillCatalog
from domain.skill_discovery import discover

MISBEHAVING = {
    "boom": "tests.plugins.misbehaving_skills:BOOM",
    "not_json": "tests.plugins.misbehaving_skills:NOT_JSON",
    "hang": "tests.plugins.misbehaving_skills:HANG",
    "hang_async": "tests.plugins.misbehaving_skills:HANG_ASYNC",
    "slow": "tests.plugins.misbehaving_skills:SLOW",
    "tally": "tests.plugins.misbehaving_skills:TALLY",
}


def write_distribution(root: Path, name: str, entry_points: dict[str, str],
                       version: str = "1.0") -> Path:  # fmt: skip
    """A distribution ``name`` under ``root`` declaring ``entry_points`` in the group."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    return info


def entry_points_under(root: Path) -> list[metadata.EntryPoint]:
    return [ep for dist in metadata.distributions(path=[str(root)])
            for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]  # fmt: skip


def installed_with(root: Path) -> SkillCatalog:
    """The installed skills and those of the distributions under ``root``."""
    installed = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    return discover([*installed, *entry_points_under(root)])


def misbehaving_catalog(root: Path) -> SkillCatalog:
    write_distribution(root, "misbehaving-skills", MISBEHAVING)
    return installed_with(root)
