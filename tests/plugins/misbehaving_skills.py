"""Skills that misbehave, for the tests: each is what a team's plugin might do wrong.

Registered through real entry points of a distribution the tests write to a temporary
directory (tests.plugins.plugin_support), never installed in the project's venv.
"""

import asyncio
import threading
import time

from pydantic import BaseModel, ConfigDict

from domain.skill_catalog import CostModel, Skill

RELEASE_HUNG = threading.Event()
"""Set by the tests when they end: the hung sync skill's thread then finishes."""


class Nothing(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seconds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float


def _boom(data: Nothing) -> dict:
    raise ValueError("the plugin broke")


def _not_json(data: Nothing) -> dict:
    return {"tags": {"a", "b"}}


def _hang(data: Nothing) -> dict:
    RELEASE_HUNG.wait(120)
    return {"woke": True}


async def _hang_async(data: Nothing) -> dict:
    await asyncio.sleep(3600)
    return {"woke": True}


def _slow(data: Seconds) -> dict:
    time.sleep(data.seconds)
    return {"slept": data.seconds}


def _tally(data: Nothing) -> int:
    return 7


BOOM = Skill("boom", Nothing, _boom, "Raises.")
NOT_JSON = Skill("not_json", Nothing, _not_json, "Returns a set.")
HANG = Skill("hang", Nothing, _hang, "Never returns (sync).", timeout_seconds=1)
HANG_ASYNC = Skill("hang_async", Nothing, _hang_async, "Never returns (async).",
                   timeout_seconds=1)  # fmt: skip
SLOW = Skill("slow", Seconds, _slow, "Sleeps, then answers.", timeout_seconds=60)
TALLY = Skill("tally", Nothing, _tally, "Answers 7; costs 0.5.", cost=CostModel.fixed("0.5"))

NOT_A_SKILL = {"name": "dict_skill"}
MISNAMED = Skill("other_name", Nothing, _tally)
BAD_DECLARATION = Skill("Bad Name", dict, "nowhere", timeout_seconds=0)  # type: ignore[arg-type]
