"""The skills a run may name: the input each one takes, what it may cost, where it comes from.

A skill is declared by a ``Skill`` (an input model, a function, a cost model, metadata) that
a Python distribution registers under the entry-point group ``governed_runs.skills``; the
four built-in skills below are declared the same way, in this project's pyproject.toml.
``domain.skill_discovery`` loads the entry points once per process into a ``SkillCatalog``.

This module is pure: importing it loads no plugin and reads nothing. The catalog is a
description (name, input model and its JSON schema, cost model, version, source); the
built-in skills name their functions as ``"module:attribute"`` strings, resolved only by
the worker (activities.skills.registry), so the CLI and the API describe and validate
against the catalog without importing the implementations. Workflow code never consults
the installed catalog (a run's replay must not depend on which plugins a worker has):
skills are checked where a run is started (client, CLI, API) and in the runs.open and
steps.execute activities.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from domain.agent import AGENT as AGENT_NAME
from domain.agent import AgentInput
from domain.chat_tools import ToolDefinitions

ENTRY_POINT_GROUP = "governed_runs.skills"
BUILT_IN = "built-in"  # the source of the skills this project's distribution registers
PROJECT_DISTRIBUTION = "governed-runs"
SKILL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

STEP_MAX_ATTEMPTS = 3
"""Attempts of a step activity; the last one records a retryable failure as final."""

STEP_HEARTBEAT_SECONDS = 10
"""A step that stops heartbeating this long (its worker died) is retried elsewhere."""

STEP_TIMEOUT_SECONDS = 300
"""One attempt of a step activity (workflows.options.STEP start_to_close)."""

MAX_SKILL_SECONDS = 270
"""The longest a skill may declare it runs: an attempt also admits and records its step."""

DEFAULT_SKILL_SECONDS = 60.0
"""How long a skill that declares nothing may run before it counts as hung."""


class CostKind(StrEnum):
    BASE = "base"  # reserves and costs the worker's SKILL_BASE_COST
    FIXED = "fixed"  # reserves and costs its declared amount
    METERED = "metered"  # reserves its worst case from the input, costs what it reports


@dataclass(frozen=True)
class CostModel:
    """What a step of the skill may cost: judged against the budget before the step runs
    (the reservation), counted after it (the cost)."""

    kind: CostKind = CostKind.BASE
    amount: Decimal | None = None  # FIXED
    # METERED: (input model, SkillContext) -> Decimal, the most the step can cost; a
    # callable, or "module:attribute". The cost after is the SkillOutput's, else this.
    reserve: Callable[..., Decimal] | str | None = None

    @classmethod
    def fixed(cls, amount: Decimal | str) -> "CostModel":
        return cls(CostKind.FIXED, amount=Decimal(str(amount)))

    @classmethod
    def metered(cls, reserve: Callable[..., Decimal] | str) -> "CostModel":
        return cls(CostKind.METERED, reserve=reserve)

    def problems(self) -> list[str]:
        if self.kind == CostKind.FIXED and (
            self.amount is None or not self.amount.is_finite() or self.amount < 0
        ):
            return ["cost: a fixed cost needs a non-negative amount"]
        if self.kind == CostKind.METERED and not _reference_ok(self.reserve):
            return ["cost: a metered cost needs reserve (a callable or 'module:attribute')"]
        return []

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"kind": str(self.kind)}
        if self.kind == CostKind.FIXED:
            described["amount"] = str(self.amount)
        if self.kind == CostKind.METERED:
            described["reservation"] = "the skill's worst case for the input"
        return described


@dataclass(frozen=True)
class Skill:
    """A skill as a distribution declares it (the object its entry point names).

    ``run`` takes the validated ``input`` model (and the SkillContext too when
    ``with_context``), sync or async, and returns a JSON value (a dict is the step's
    output; any other JSON value becomes ``{"result": value}``), a pydantic model, or an
    ``activities.skills.base.SkillOutput``. ``calls_out``: the step gets its tenant's
    egress policy (``ctx.calling_out()``). ``timeout_seconds``: past it the skill counts as
    hung and its step fails. ``version``: the distribution's unless given."""

    name: str
    input: type[BaseModel]
    run: Callable[..., Any] | str
    description: str = ""
    version: str | None = None
    cost: CostModel = field(default_factory=CostModel)
    with_context: bool = False
    calls_out: bool = False
    timeout_seconds: float = DEFAULT_SKILL_SECONDS

    def problems(self) -> list[str]:
        """Why this declaration cannot be catalogued (empty when it can)."""
        found: list[str] = []
        if not isinstance(self.name, str) or not SKILL_NAME.match(self.name):
            found.append(f"name {self.name!r} is not a skill name (pattern {SKILL_NAME.pattern})")
        if not (isinstance(self.input, type) and issubclass(self.input, BaseModel)):
            found.append(f"input {self.input!r} is not a pydantic model class")
        else:
            try:
                self.input.model_json_schema()
            except Exception as exc:  # a model pydantic cannot describe
                found.append(f"input {self.input.__name__} has no JSON schema: {exc}")
        if not _reference_ok(self.run):
            found.append("run is neither a callable nor a 'module:attribute' string")
        limit = self.timeout_seconds
        if not isinstance(limit, int | float) or not 0 < limit <= MAX_SKILL_SECONDS:
            found.append(f"timeout_seconds {limit!r} is not in (0, {MAX_SKILL_SECONDS}]")
        if not isinstance(self.cost, CostModel):
            found.append(f"cost {self.cost!r} is not a CostModel")
        else:
            found += self.cost.problems()
        return found


def _reference_ok(ref: Any) -> bool:
    if isinstance(ref, str):
        module, _, attribute = ref.partition(":")
        return bool(module and attribute)
    return callable(ref)


@dataclass(frozen=True)
class CatalogEntry:
    """An installed skill: its declaration, where it comes from and which version."""

    skill: Skill
    source: str  # BUILT_IN, or the name of the distribution that registers it
    version: str
    entry_point: str  # "name = module:attribute"

    @property
    def name(self) -> str:
        return self.skill.name

    def describe(self) -> dict[str, Any]:
        s = self.skill
        return {
            "name": s.name,
            "description": s.description,
            "version": self.version,
            "source": self.source,
            "input_schema": s.input.model_json_schema(),
            "cost_model": s.cost.describe(),
            "calls_out": s.calls_out,
            "timeout_seconds": s.timeout_seconds,
            "entry_point": self.entry_point,
        }


@dataclass(frozen=True)
class LoadFailure:
    """An entry point of the group that did not become a skill, and why."""

    entry_point: str  # "name = module:attribute"
    distribution: str
    error: str

    def describe(self) -> dict[str, str]:
        return {"entry_point": self.entry_point, "distribution": self.distribution,
                "error": self.error}  # fmt: skip


class UnknownSkillError(ValueError):
    def __init__(self, skill: str, known: list[str]) -> None:
        super().__init__(f"unknown skill {skill!r} (known skills: {', '.join(known)})")
        self.skill = skill


@dataclass(frozen=True)
class SkillCatalog:
    """The skills a process knows, by name, and the entry points that failed to load."""

    entries: Mapping[str, CatalogEntry]
    failures: tuple[LoadFailure, ...] = ()

    @classmethod
    def of(cls, skills: tuple[Skill, ...], source: str, version: str) -> "SkillCatalog":
        return cls({s.name: CatalogEntry(s, source, s.version or version, f"{s.name} (as declared)")
                    for s in skills})  # fmt: skip

    @property
    def names(self) -> list[str]:
        return sorted(self.entries)

    def entry(self, name: str) -> CatalogEntry:
        found = self.entries.get(name)
        if found is None:
            raise UnknownSkillError(name, self.names)
        return found

    def validate(self, name: str, raw: dict[str, Any]) -> BaseModel:
        """The step's input as its skill's model; UnknownSkillError or ValidationError."""
        return self.entry(name).skill.input.model_validate(raw)

    def describe(self) -> dict[str, Any]:
        return {
            "skills": [self.entries[n].describe() for n in self.names],
            "failed": [f.describe() for f in self.failures],
        }


# ----- the built-in skills ------------------------------------------------------------


class _SkillInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoInput(_SkillInput):
    """Returns its text unchanged."""

    text: str


class TemplateInput(_SkillInput):
    """Renders ``template`` (``$name`` placeholders) with ``variables``."""

    template: str
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)


class HttpInput(_SkillInput):
    """Performs one HTTP request and returns status and body."""

    url: HttpUrl
    method: Literal["GET", "POST", "PUT", "DELETE"] = "GET"
    json_body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class ToolCallFunction(_SkillInput):
    name: str = Field(min_length=1, max_length=200)
    arguments: str  # JSON, as the model wrote it


class MessageToolCall(_SkillInput):
    """A call the model asked for, as it comes back in the assistant's message."""

    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_SkillInput):
    """One message of a conversation: ``system``, ``user`` and ``assistant`` messages carry
    ``content``; an assistant message may carry the ``tool_calls`` the model asked for
    instead, and each call's result comes back as a ``tool`` message naming its
    ``tool_call_id`` (an agent step's conversation, domain.agent)."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[MessageToolCall] | None = Field(default=None, min_length=1)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _shaped_for_its_role(self) -> "ChatMessage":
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("tool_calls: only an assistant message carries tool calls")
        if (self.tool_call_id is not None) != (self.role == "tool"):
            raise ValueError("tool_call_id: a tool message (and only one) names the call "
                             "it answers")  # fmt: skip
        if self.content is None and self.tool_calls is None:
            raise ValueError("content: required (an assistant message may carry tool_calls "
                             "instead)")  # fmt: skip
        return self


class LlmInput(_SkillInput):
    """One OpenAI-compatible chat completion; cost comes from the returned usage."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)
    tools: ToolDefinitions | None = None  # offered to the model; its calls come back

    def chat_messages(self) -> list[dict[str, Any]]:
        """The messages as the request carries them (unset fields left out)."""
        if self.messages:
            return [m.model_dump(exclude_none=True) for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


# The objects this project's entry points name ([project.entry-points."governed_runs.skills"]
# in pyproject.toml); the functions are the worker's, named, never imported here.
ECHO = Skill("echo", EchoInput, "activities.skills.text:echo",
             "Returns its text unchanged.", with_context=True)  # fmt: skip
TEMPLATE = Skill("template", TemplateInput, "activities.skills.text:template",
                 "Renders a $name template with variables.", with_context=True)  # fmt: skip
HTTP = Skill("http", HttpInput, "activities.skills.http:http",
             "One HTTP request under the tenant's egress policy; returns status and body.",
             with_context=True, calls_out=True, timeout_seconds=MAX_SKILL_SECONDS)  # fmt: skip
LLM = Skill("llm", LlmInput, "activities.skills.llm:llm",
            "One OpenAI-compatible chat completion; costs its returned usage.",
            cost=CostModel.metered("activities.skills.llm:reservation"), with_context=True,
            calls_out=True, timeout_seconds=MAX_SKILL_SECONDS)  # fmt: skip
BUILT_IN_SKILLS = (ECHO, TEMPLATE, HTTP, LLM)

BUILT_IN_CATALOG = SkillCatalog.of(BUILT_IN_SKILLS, BUILT_IN, "unregistered")
"""The built-in skills alone: what runs started before patch skills-checked-at-open were
validated against inside the workflow (and still are, when one replays)."""

# The agent step: a skill of the catalog (named, described, its input validated like any
# step's) whose execution is RunWorkflow's own (workflows.agent_loop), so no entry point
# registers it and no plugin can replace it: domain.skill_discovery puts it first.
AGENT = Skill(AGENT_NAME, AgentInput, "domain.agent:run_by_the_workflow",
              "An agent: a model that calls the tools it may use, driven by the workflow; "
              "each model call and each tool call is a governed step of its own.",
              cost=CostModel.fixed("0"))  # fmt: skip


def workflow_entries(version: str) -> dict[str, CatalogEntry]:
    """The skills the workflow runs itself (the agent), as catalog entries."""
    return {AGENT.name: CatalogEntry(AGENT, BUILT_IN, version,
                                     f"{AGENT.name} (driven by RunWorkflow)")}  # fmt: skip
