"""Two example skills for governed-runs, registered under the entry-point group
``governed_runs.skills`` (see this package's pyproject.toml).

- ``word_count`` (sync): counts the words of a text; a fixed cost per step.
- ``slugify`` (async): turns a title into a URL slug; the worker's base cost per step.

A skill is a ``Skill``: an input model (pydantic; it is the skill's JSON schema in the
catalog, and every step's input is validated against it before the run opens), a function
that takes the validated input and returns JSON, and its metadata.
"""

import asyncio
import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field

from domain.skill_catalog import CostModel, Skill


class WordCountInput(BaseModel):
    """The text whose words are counted."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000)
    top: int = Field(default=3, ge=0, le=50, description="how many of the commonest words")


def count_words(data: WordCountInput) -> dict:
    words = re.findall(r"[\w']+", data.text.lower())
    counts: dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    commonest = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: data.top]
    return {"words": len(words), "distinct": len(counts),
            "commonest": [{"word": w, "count": n} for w, n in commonest]}  # fmt: skip


class SlugifyInput(BaseModel):
    """A title to turn into a slug."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=1000)
    separator: str = Field(default="-", pattern=r"^[-_.]$")
    max_length: int = Field(default=80, ge=1, le=200)


async def slugify(data: SlugifyInput) -> dict:
    await asyncio.sleep(0)  # an async skill: it runs in an event loop of its own
    ascii_only = unicodedata.normalize("NFKD", data.title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_only.lower())
    slug = data.separator.join(words)[: data.max_length].strip(data.separator)
    return {"slug": slug}


WORD_COUNT = Skill(
    name="word_count",
    input=WordCountInput,
    run=count_words,
    description="Counts the words of a text and names the commonest.",
    cost=CostModel.fixed("0.00002"),
    timeout_seconds=10,
)

SLUGIFY = Skill(
    name="slugify",
    input=SlugifyInput,
    run=slugify,
    description="Turns a title into a URL slug (ASCII, lower case).",
    timeout_seconds=5,
)
