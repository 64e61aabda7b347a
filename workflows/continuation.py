"""Continue-as-new for long runs (patch ``continue-as-new-when-suggested``).

When Temporal suggests it (the history's event count or size passed the namespace's
``limit.history*.suggestContinueAsNew``), a run continues as a new run of the same
workflow id at the next boundary between two planned steps where nothing is in flight:
no pause held or asked for, no stop, resume, approval or refusal waiting, no update
handler running. The new run gets the run's input again and a RunContinuation
(domain.continuation) with what was committed and decided; every write it makes is keyed
by run id and step index as before, so nothing is written twice and the hash chain goes
on from the last step's hash. An agent step runs whole within one run (its loop is bounded
by max_turns: README "Agent steps").
"""

from typing import Any

from pydantic import ValidationError
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.continuation import RunContinuation
    from workflows.agent_loop import AgentLoop
    from workflows.control import RunControl
    from workflows.errors import describe_validation_error
    from workflows.run_state import RunState


class ContinuationUnreadable(RuntimeError):
    """A continuation this code cannot read: a bug or a version it does not know. Not an
    ApplicationError: the workflow *task* fails and is retried until a worker that reads
    it takes it; the run waits instead of failing."""


def split_args(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """The run's input and, in a run Temporal continued as new, its continuation payload
    (None otherwise: a second payload of a fresh start stays part of the input, which is
    then refused as not one object)."""
    if len(args) == 2 and workflow.info().continued_run_id is not None:
        return args[:1], args[1]
    return args, None


def accept(raw: Any) -> tuple[RunContinuation | None, str | None]:
    """The continuation, or why this run refuses it: only the run Temporal continued as
    new from the run the continuation names takes it (not a cron run, not a retry). One it
    should take but cannot read is ContinuationUnreadable."""
    info = workflow.info()
    named = raw.get("continued_from") if isinstance(raw, dict) else None
    if info.cron_schedule or info.attempt != 1 or named != info.continued_run_id:
        return None, (
            f"continuation: refused, this run was not continued as new from run {named!r} "
            f"(it follows {info.continued_run_id!r}"
            f"{', a cron schedule' if info.cron_schedule else ''}, attempt {info.attempt})"
        )
    try:
        return RunContinuation.model_validate(raw), None
    except ValidationError as exc:
        raise ContinuationUnreadable(f"continuation: {describe_validation_error(exc)}") from None


def due(state: RunState, control: RunControl) -> bool:
    """Continue as new here: Temporal suggests it and nothing is in flight."""
    return (
        state.continue_as_new_when_suggested
        and workflow.info().is_continue_as_new_suggested()
        and control.quiescent
        and workflow.all_handlers_finished()
    )


def continue_as_new(raw_input: Any, state: RunState, control: RunControl, agent: AgentLoop,
                    next_index: int, segment: int) -> None:  # fmt: skip
    """End this run and continue it as new at planned step ``next_index`` (never returns)."""
    carried = RunContinuation(
        continued_from=workflow.info().run_id,
        next_index=next_index,
        segment=segment + 1,
        agent_tools=list(agent.tools.values()),
        **state.carried(),
        **control.carried(),
    )
    workflow.logger.info(
        "run %s continues as new before step %d (history %d events, %d bytes)",
        state.run_id, next_index, workflow.info().get_current_history_length(),
        workflow.info().get_current_history_size(),
    )  # fmt: skip
    workflow.continue_as_new(args=[raw_input, carried.model_dump(mode="json")])


def restore(carried: RunContinuation, state: RunState, control: RunControl,
            agent: AgentLoop) -> None:  # fmt: skip
    """Take over the run where the one before this continue-as-new left it."""
    state.restore(carried)
    control.restore(carried)
    agent.offer(carried.agent_tools)
