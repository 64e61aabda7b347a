"""An agent step (skill ``agent``): a model that calls tools, each call a governed step.

A step ``{"skill": "agent", "input": AgentInput}`` is driven by RunWorkflow itself
(workflows.agent_loop), never by a skill function: each model call is one step of skill
``llm`` (its input ``{model, messages, tools}``) and each tool call the model asks for is
one step of that tool's skill, both through the step activity like any planned step —
judged before they run (rules, the budget with their reservation, approvals), traced in the
hash chain, counted in cost. This module holds what the loop decides, pure:

- **The input** (``AgentInput``): the model, the system and user prompts (references to
  earlier outputs allowed there only, rendered as text: domain.step_refs), the tools it may
  call (skill names of the catalog, at least one, never ``agent``), ``max_turns`` (model
  calls, 1..MAX_TURNS) and an optional ``budget`` (what the agent's steps may cost, at most
  the run's). ``input_problem`` checks it where a run is started and when it opens.
- **The tools offered**: OpenAI-style definitions from the catalog's input schemas
  (``tool_definitions``, built when the run opens, recorded in its history).
- **A tool call** (``plan_calls``): one the agent may make, with arguments that are a JSON
  object, becomes a step of that skill; one naming a tool that is not among the agent's,
  whose arguments are not a JSON object or reference a secret (``${secret:NAME}``: only a
  run's own input may), is refused — recorded as a step of skill ``agent`` that did not
  run (status FAILED, the refusal its error) and answered to the model as an error; past
  MAX_TOOL_CALLS_PER_TURN in one reply, the rest are refused together in one such step.
  What the model and the tools wrote goes back to the model with any secret reference
  made plain text (``inert``), so the step activity never fills one in.
- **Bounds** (a run's history stays small, without continue-as-new): MAX_TURNS model
  calls, MAX_TOOL_CALLS_PER_TURN calls a turn, a tool result sent back cut at
  MAX_TOOL_RESULT_CHARS, and a conversation of at most MAX_CONVERSATION_CHARS (past it the
  step fails before the call). A step of the loop is 7 history events and a turn adds one
  contract amendment: the longest loop stays under 4,000 events.
"""

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain import step_refs
from domain.chat_tools import ToolDefinition, function_tool
from domain.secret_refs import REFERENCE, referenced_names

AGENT = "agent"
LLM = "llm"
MAX_TURNS = 50
MAX_TOOLS = 32
MAX_TOOL_CALLS_PER_TURN = 8
MAX_TOOL_RESULT_CHARS = 8_000
MAX_CONVERSATION_CHARS = 200_000
MAX_RECORDED_ARGUMENT_CHARS = 2_000
PROMPT_FIELDS = ("system", "prompt")
_SKILL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # domain.skill_catalog.SKILL_NAME
_PLACEHOLDER = "(a reference to an earlier step's output)"


class AgentInput(BaseModel):
    """An agent: a model that may call ``tools`` (skill names) for up to ``max_turns``
    model calls, within its own ``budget`` if it has one."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    system: str | None = None
    prompt: str = Field(min_length=1)
    tools: list[str] = Field(min_length=1, max_length=MAX_TOOLS)
    max_turns: int = Field(default=8, ge=1, le=MAX_TURNS)
    budget: Decimal | None = Field(default=None, ge=0, le=Decimal("1000000000"),
                                   decimal_places=6)  # fmt: skip
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)

    @field_validator("tools")
    @classmethod
    def _skill_names_once(cls, tools: list[str]) -> list[str]:
        bad = [t for t in tools if not _SKILL_NAME.match(t)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a skill name")
        if AGENT in tools:
            raise ValueError("an agent cannot call 'agent' (an agent step is not a tool)")
        repeated = sorted({t for t in tools if tools.count(t) > 1})
        if repeated:
            raise ValueError(f"each tool once: {', '.join(repeated)} named more than once")
        return tools


def run_by_the_workflow(_: AgentInput) -> None:
    """What the catalog names as the agent's function: RunWorkflow drives an agent step
    itself (workflows.agent_loop); a step activity asked to run one refuses."""
    raise RuntimeError("an agent step is driven by RunWorkflow, not run as a skill")


# ----- checked at start --------------------------------------------------------------


class AgentInputError(ValueError):
    """An agent input that cannot run (its message names the field)."""


def input_problem(raw: dict[str, Any], known: Iterable[str]) -> str | None:
    """Why this agent input cannot run, naming the field: references anywhere but in the
    prompts, an input that does not validate (no tools, max_turns ≤ 0, ...), or a tool that
    is not a skill of ``known`` (the catalog's names). None when it can."""
    for ref in step_refs.refs_in(raw):
        place = ref.where.split(".")
        if len(place) < 2 or place[1] not in PROMPT_FIELDS:
            return (f"{ref.where}: an agent's input may reference earlier outputs only in "
                    f"{' and '.join(PROMPT_FIELDS)}")  # fmt: skip
    inp = AgentInput.model_validate(_with_placeholders(raw))  # ValidationError: the caller's
    names = set(known)
    unknown = [t for t in inp.tools if t not in names]
    if unknown:
        listed = ", ".join(sorted(n for n in names if n != AGENT))
        return f"tools: unknown skill {unknown[0]!r} (known skills: {listed})"
    return None


def _with_placeholders(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with each prompt that references an earlier output replaced by text (checked
    for its shape; the reference is resolved when the step runs)."""
    return {k: (_PLACEHOLDER if k in PROMPT_FIELDS and step_refs.refs_in(v) else v)
            for k, v in raw.items()}  # fmt: skip


def resolved_input(data: dict[str, Any]) -> AgentInput:
    """The agent's input once its references are resolved: a prompt that is not text (an
    object an earlier step returned, say) is given to the model as JSON."""
    rendered = {k: (v if k not in PROMPT_FIELDS or v is None or isinstance(v, str)
                    else json.dumps(v, sort_keys=True, ensure_ascii=False))
                for k, v in data.items()}  # fmt: skip
    return AgentInput.model_validate(rendered)


def planned_skills(skill: str, raw: Mapping[str, Any]) -> list[str]:
    """The skills a step may use (what a tenant's allowed skills must hold): its own, and
    for an agent ``llm`` (its model calls) and the tools it may call."""
    return [skill, LLM, *tools_of(raw)] if skill == AGENT else [skill]


def tools_of(raw: Mapping[str, Any]) -> list[str]:
    """The tools an agent's input names (as written: checked elsewhere)."""
    tools = raw.get("tools")
    return [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else []


class _Catalog(Protocol):
    """What tool_definitions reads of a domain.skill_catalog.SkillCatalog (which imports
    this module)."""

    @property
    def entries(self) -> Mapping[str, Any]: ...


def tool_definitions(
    catalog: _Catalog, steps: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[ToolDefinition]:
    """The tools the agent steps of a run offer their model, each once, by name: the
    catalog's skills as OpenAI-style functions (domain.chat_tools.function_tool)."""
    names = sorted({t for skill, raw in steps if skill == AGENT
                    for t in tools_of(raw) if t in catalog.entries})  # fmt: skip
    return [function_tool(n, catalog.entries[n].skill.description,
                          catalog.entries[n].skill.input.model_json_schema())
            for n in names]  # fmt: skip


# ----- the conversation ----------------------------------------------------------------


def first_messages(inp: AgentInput) -> list[dict[str, Any]]:
    system = [{"role": "system", "content": inp.system}] if inp.system else []
    return [*system, {"role": "user", "content": inp.prompt}]


def model_call(inp: AgentInput, messages: list[dict[str, Any]],
               tools: list[ToolDefinition]) -> dict[str, Any]:  # fmt: skip
    """The input of the llm step of one turn."""
    call: dict[str, Any] = {"messages": messages,
                            "tools": [t.model_dump(exclude_none=True) for t in tools]}  # fmt: skip
    for name in ("model", "max_tokens", "temperature"):
        value = getattr(inp, name)
        if value is not None:
            call[name] = value
    return call


def inert(text: str) -> str:
    """``text`` with each ``${secret:NAME}`` made plain text (``[secret:NAME]``): what a model
    or a tool wrote goes back into the conversation, which the step activity would fill
    with the tenant's secrets (domain.secret_refs) — only the run's own input may."""
    return REFERENCE.sub(lambda m: f"[secret:{m.group(1)}]", text)


def assistant_message(reply: Mapping[str, Any]) -> dict[str, Any]:
    """The model's reply as the next call sends it back: its text (if any) and its calls."""
    message: dict[str, Any] = {"role": "assistant"}
    text, calls = inert(reply.get("text") or ""), reply.get("tool_calls") or []
    if text or not calls:  # as the llm skill sends it: no content rather than a null one
        message["content"] = text
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["function"]["name"],
                          "arguments": inert(c["function"]["arguments"])}}
            for c in calls
        ]  # fmt: skip
    return message


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def conversation_chars(messages: list[dict[str, Any]]) -> int:
    return len(json.dumps(messages, ensure_ascii=False))


def result_text(output: Mapping[str, Any] | None, error: str | None) -> str:
    """What a tool step gives back to the model: its output as JSON, or its error, with no
    secret reference left (``inert``); cut at MAX_TOOL_RESULT_CHARS."""
    body = {"error": error} if error is not None else dict(output or {})
    text = inert(json.dumps(body, sort_keys=True, ensure_ascii=False))
    if len(text) <= MAX_TOOL_RESULT_CHARS:
        return text
    cut = MAX_TOOL_RESULT_CHARS - 60
    return f"{text[:cut]}… (cut: {len(text)} characters, the first {cut} shown)"


# ----- the model's tool calls ----------------------------------------------------------


@dataclass(frozen=True)
class PlannedCall:
    """What one step of a turn does: run ``skill`` on ``arguments``, or record a refusal
    (``refusal`` set: a step of skill ``agent`` that does not run) and answer each of
    ``call_ids`` with it."""

    call_ids: tuple[str, ...]
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None

    @property
    def skill(self) -> str:
        return AGENT if self.refusal is not None else self.name


def plan_calls(calls: Sequence[Mapping[str, Any]], tools: Sequence[str]) -> list[PlannedCall]:
    """A step for each tool call of a reply (``[{id, type, function: {name, arguments}}]``),
    in order: a call of one of ``tools`` with a JSON object as arguments runs that skill;
    any other is refused with the reason; past MAX_TOOL_CALLS_PER_TURN the rest are refused
    in one step."""
    planned = [_plan(c, tools) for c in calls[:MAX_TOOL_CALLS_PER_TURN]]
    rest = calls[MAX_TOOL_CALLS_PER_TURN:]
    if rest:
        names = [str(c["function"]["name"])[:100] for c in rest]
        reason = (f"refused: at most {MAX_TOOL_CALLS_PER_TURN} tool calls a turn; "
                  f"{len(rest)} more not run ({', '.join(names)})")  # fmt: skip
        listed = [{"id": c["id"], "name": n} for c, n in zip(rest, names, strict=True)]
        record = {"tool_calls": listed}
        planned.append(PlannedCall(tuple(c["id"] for c in rest), "(too many)", record, reason))
    return planned


def _plan(call: Mapping[str, Any], tools: Sequence[str]) -> PlannedCall:
    call_id, name = call["id"], str(call["function"]["name"])
    raw = call["function"]["arguments"]
    refusal = None
    if name not in tools:
        refusal = (f"refused: {name[:100]!r} is not a tool of this agent "
                   f"(its tools: {', '.join(tools)})")  # fmt: skip
    else:
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            refusal = f"refused: the arguments of {name} are not valid JSON ({exc})"
        else:
            if not isinstance(arguments, dict):
                refusal = (f"refused: the arguments of {name} must be a JSON object, not "
                           f"{type(arguments).__name__}")  # fmt: skip
            elif referenced_names(arguments):  # a model never gets a tenant's secrets
                refusal = (f"refused: the arguments of {name} reference a secret; only the "
                           "run's own input may")  # fmt: skip
            else:
                return PlannedCall((call_id,), name, arguments)
    record = {"tool_call_id": call_id, "name": name[:100],
              "arguments": raw[:MAX_RECORDED_ARGUMENT_CHARS]}  # fmt: skip
    return PlannedCall((call_id,), name, record, refusal)


# ----- what the step returns -----------------------------------------------------------


@dataclass
class AgentProgress:
    """What an agent step has done so far; ``output`` is its step output once it ends."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def replied(self, reply: Mapping[str, Any], cost: Decimal) -> None:
        self.turns += 1
        self.cost += cost
        usage = reply.get("usage") or {}
        self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def called(self, planned: PlannedCall, step_index: int, ok: bool, cost: Decimal) -> None:
        self.cost += cost
        status = "refused" if planned.refusal is not None else "ok" if ok else "failed"
        self.calls.append({"turn": self.turns, "name": planned.name[:100], "status": status,
                           "step_index": step_index})  # fmt: skip

    def output(self, reply: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "text": reply.get("text") or "",
            "model": reply.get("model"),
            "turns": self.turns,
            "tool_calls": self.calls,
            "tool_calls_made": sum(1 for c in self.calls if c["status"] != "refused"),
            "tool_calls_refused": sum(1 for c in self.calls if c["status"] == "refused"),
            "usage": {"prompt_tokens": self.prompt_tokens,
                      "completion_tokens": self.completion_tokens},
            "cost": str(self.cost),
        }  # fmt: skip
