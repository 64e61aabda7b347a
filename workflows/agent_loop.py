"""The agent step of RunWorkflow: the workflow drives the loop, every call a governed step.

An agent step (domain.agent) is a loop of turns, decided from the recorded results only:

1. Before each step of the loop, the run's checkpoint (workflows.control): a stop, a pause,
   a policy check, a refused signal act between any two calls, as between planned steps.
2. The model call: one step of skill ``llm`` through the step activity (``{model,
   messages, tools}``), judged before it runs (rules, the budget with its reservation,
   approvals), traced, counted. A reply without tool calls ends the step: its output
   (``text``, ``turns``, ``tool_calls``, ``usage``, ``cost``) is a step output like any
   other, for later steps' references.
3. Each tool call of the reply: a step of that skill with the parsed arguments, through the
   same activity — a REQUIRE_APPROVAL rule holds it for an approval, a BLOCKED or PREVENTED
   one (or the budget) stops the run as a planned step's prevention does. A refused call
   (not one of the agent's tools, arguments that are not a JSON object) is recorded as a
   step of skill ``agent`` that did not run. Its output, its failure or its refusal goes
   back to the model as the ``tool`` message.

Every step of the loop takes the next index of the trace (the run's ``steps_done``): the
agent's first model call takes the agent's own place, declared when the run opened; the
loop declares the others first, as an amendment of the run's audit contract, one per turn.
Planned steps after the agent follow it in the trace.

The step fails the run (FAILED, like a failed planned step) when a model call fails, when
the model still calls tools at ``max_turns``, or when the conversation outgrows
domain.agent.MAX_CONVERSATION_CHARS; its own ``budget`` caps every call's judgement, so a
call that would not fit is prevented by the budget (failed_policy) before it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.steps import StepActivities
    from domain import agent, contract, step_refs
    from domain.agent import AGENT, LLM, AgentInput, AgentProgress, PlannedCall
    from domain.chat_tools import ToolDefinition
    from domain.enums import IncidentCategory, RunStatus, Severity
    from domain.messages import StepPrevention, StepRequest, StepResult
    from domain.models import StepSpec
    from domain.outcome import IncidentSpec, Outcome
    from domain.validation_errors import describe_first
    from workflows.control import RunControl
    from workflows.options import STEP, STEP_DURABLE
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites

RUN_FAILURE = IncidentSpec(IncidentCategory.RUN_FAILURE, Severity.HIGH, "Run failed")


@dataclass
class _Agent:
    """One agent step while it runs."""

    index: int  # in the run's plan
    inp: AgentInput
    later_steps: int  # planned steps after it: each needs a place in the trace too
    budget: Decimal | None  # the tightest of the run's budget and the agent's own cap
    capped_by_agent: bool
    messages: list[dict[str, Any]]
    progress: AgentProgress = field(default_factory=AgentProgress)

    @property
    def label(self) -> str:
        return f"step {self.index} (agent)"


class AgentLoop:
    """Runs the agent steps of one run on its ``RunState``, writing through ``RunWrites``
    and acting on its control (``RunControl``) between calls; ``prevented`` makes the
    Outcome of a step a rule or the budget stopped (RunWorkflow's, for planned steps)."""

    def __init__(self, state: RunState, writes: RunWrites, control: RunControl,
                 prevented: Callable[[StepPrevention], Outcome]) -> None:  # fmt: skip
        self.state = state
        self.writes = writes
        self.control = control
        self.prevented = prevented
        self.tools: dict[str, ToolDefinition] = {}

    def offer(self, tools: list[ToolDefinition]) -> None:
        """The tool definitions runs.open built from the worker's catalog (recorded)."""
        self.tools = {t.function.name: t for t in tools}

    async def run(self, index: int, step: StepSpec, later_steps: int,
                  keep_output: bool) -> Outcome | None:  # fmt: skip
        """Plan step ``index``, an agent: None when the model answered without tool calls
        (its output kept for later steps when ``keep_output``), else the Outcome that ends
        the run."""
        s = self.state
        try:  # the earlier outputs its prompts reference, from the recorded results
            data = step_refs.resolve(step.input, s.outputs, f"steps.{index}.input")
            inp = agent.resolved_input(data)
        except step_refs.RefError as exc:
            return _failed(f"step {index} (agent) not run: {exc}")
        except ValidationError as exc:
            return _failed(f"step {index} (agent) not run: steps.{index}.input."
                           f"{describe_first(exc)}")  # fmt: skip
        missing = [t for t in inp.tools if t not in self.tools]
        if missing:  # runs.open builds every tool's definition: only a bug gets here
            return _failed(f"step {index} (agent) not run: tool {missing[0]!r} has no "
                           "definition from the run's opening")  # fmt: skip
        cap = None if inp.budget is None else s.cost + inp.budget
        budget = cap if s.budget is None else s.budget if cap is None else min(cap, s.budget)
        run = _Agent(index, inp, later_steps, budget, cap is not None and budget == cap,
                     agent.first_messages(inp))  # fmt: skip
        s.skills_used.append(AGENT)
        offered = [self.tools[t] for t in inp.tools]
        for turn in range(1, inp.max_turns + 1):
            size = agent.conversation_chars(run.messages)
            if size > agent.MAX_CONVERSATION_CHARS:
                return _failed(f"{run.label}: its conversation is {size} characters, over "
                               f"{agent.MAX_CONVERSATION_CHARS}; turn {turn} not sent")  # fmt: skip
            call = agent.model_call(inp, run.messages, offered)
            got = await self._governed(run, LLM, call, f"turn {turn}/{inp.max_turns} llm")
            if isinstance(got, Outcome):
                return got
            _, reply = got
            if not reply.ok:
                return _failed(f"{run.label}: the model call of turn {turn} failed: "
                               f"{reply.error}")  # fmt: skip
            run.progress.replied(reply.output, reply.cost)
            calls = reply.output.get("tool_calls") or []
            if not calls:
                if keep_output and step.id is not None:
                    s.outputs[step.id] = run.progress.output(reply.output)
                return None
            if turn == inp.max_turns:
                names = ", ".join(sorted({str(c["function"]["name"])[:100] for c in calls}))
                return _failed(f"{run.label}: max_turns ({inp.max_turns}) reached with the "
                               f"model still calling tools ({names})")  # fmt: skip
            ended = await self._tool_calls(run, reply.output, turn)
            if ended is not None:
                return ended
        raise AssertionError("unreachable: the last turn returns")  # pragma: no cover

    async def _tool_calls(self, run: _Agent, reply: dict[str, Any], turn: int) -> Outcome | None:
        """The reply's tool calls, one step each, their results appended to the
        conversation; the Outcome if one of them ends the run."""
        run.messages.append(agent.assistant_message(reply))
        planned = agent.plan_calls(reply["tool_calls"], run.inp.tools)
        await self._declare(run, len(planned) + 1, turn)  # its calls, and the next turn's
        for call in planned:
            what = f"turn {turn} {'refused' if call.refusal else 'tool'} {call.name[:40]}"
            got = await self._governed(run, call.skill, call.arguments, what, call)
            if isinstance(got, Outcome):
                return got
            at, result = got
            run.progress.called(call, at, result.ok, result.cost)
            text = agent.result_text(result.output if result.ok else None,
                                     None if result.ok else result.error)  # fmt: skip
            run.messages += [agent.tool_message(call_id, text) for call_id in call.call_ids]
        return None

    async def _declare(self, run: _Agent, steps: int, turn: int) -> None:
        """Room in the trace for ``steps`` more steps of this agent (and one for each planned
        step after it): the run's audit contract expects each index it will record."""
        s = self.state
        needed = s.steps_done + steps + run.later_steps
        if needed <= s.steps_total:
            return
        new = range(s.steps_total, needed)
        s.steps_total = needed
        self.writes.changed()
        if s.traced:  # an untraced run withdrew its trace steps from the contract
            await self.writes.amend(
                f"agent-steps-{new.start}",
                f"{run.label}: turn {turn} calls tools (steps {new.start}-{new.stop - 1})",
                [],
                [contract.record_step(i) for i in new],
            )

    async def _governed(
        self, run: _Agent, skill: str, data: dict[str, Any], what: str,
        call: PlannedCall | None = None,
    ) -> tuple[int, StepResult] | Outcome:  # fmt: skip
        """One step of the loop at the trace's next index, as ``_execute`` runs a planned
        step: the checkpoint first, held for its approval or a free steps-in-flight slot,
        its prevention the run's end. Its index and result, or the Outcome that ends the
        run."""
        s = self.state
        at = s.steps_done
        refusal = call.refusal if call is not None else None
        call_id = call.call_ids[0] if call and call.call_ids else None

        async def attempt(approved: str | None) -> StepResult:
            return await self._step(at, skill, data, what, approved, refusal, run, call_id)

        def could_not_run(cause: str) -> Outcome:
            return _failed(f"{run.label}: step {at} ({skill}) could not run: {cause}")

        result = await self.control.admitted_step(at, attempt, could_not_run)
        if isinstance(result, Outcome):
            return result
        if result.prevented is not None:  # judged before it ran: it did not run
            return self._prevented(run, result.prevented)
        s.steps_done = at + 1
        s.cost += result.cost
        self.writes.changed()
        if refusal is None:
            s.skills_used.append(skill)
        if result.hash:
            s.prev_hash = result.hash
        self.control.after_step(s.cost)
        return at, result

    async def _step(
        self, at: int, skill: str, data: dict[str, Any], what: str, approved: str | None,
        refusal: str | None, run: _Agent, tool_call_id: str | None = None,
    ) -> StepResult:  # fmt: skip
        s = self.state
        return await workflow.execute_activity_method(
            StepActivities.execute,
            StepRequest(
                run_id=s.run_id,
                tenant_id=s.tenant_id,
                index=at,
                skill=skill,
                input=data,
                traced=s.traced,
                prev_hash=s.prev_hash,
                cost_so_far=s.cost,
                budget=run.budget,
                approved_digest=approved,
                refusal=refusal,
                tool_call_id=tool_call_id if refusal is None else None,
            ),
            summary=f"step {at + 1}/{s.steps_total} agent {what}",  # shown in the Web UI
            **(STEP_DURABLE if s.durable_writes else STEP),
        )

    def _prevented(self, run: _Agent, prevention: StepPrevention) -> Outcome:
        outcome = self.prevented(prevention)
        if prevention.by_budget and run.capped_by_agent:
            reason = (f"{outcome.reason} (the agent's budget {run.inp.budget} of "
                      f"{run.label})")  # fmt: skip
            return replace(outcome, reason=reason)
        return outcome


def _failed(reason: str) -> Outcome:
    return Outcome(RunStatus.FAILED, reason, RUN_FAILURE)
