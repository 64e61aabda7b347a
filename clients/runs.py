"""Starting and controlling runs through Temporal: shared by the CLI, the demo and the API."""

import json
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import search_attributes
from domain.enums import Phase, RunStatus
from domain.ids import run_workflow_id
from domain.models import (
    MAX_RUN_INPUT_BYTES,
    ApproveRequest,
    PauseRequest,
    ResumeRequest,
    RunInput,
    RunResult,
    RunStatusView,
    StopRequest,
)
from domain.outcome import RUN_FAILURE_TYPES
from domain.validation_errors import describe

# A run's workflow task that its worker took and never completed (the worker died) is
# handed to another worker after this long (Temporal's default: 10 s): 2 s, and 16 ms more
# per step, for the full replay of a long run's history on a worker that does not hold it
# in its cache (1 s of CPU for 500 steps); at most Temporal's default. A healthy task of an
# 8-step run took 0.4 s at most with 8 runs in flight on 2 cores, 1.9 s with 64; one that
# runs local activities longer than 80 % of it is kept alive by the SDK (README
# "Reliability").
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=2)
WORKFLOW_TASK_TIMEOUT_PER_STEP = timedelta(milliseconds=16)
WORKFLOW_TASK_TIMEOUT_MAX = timedelta(seconds=10)


def workflow_task_timeout(steps: int) -> timedelta:
    return min(WORKFLOW_TASK_TIMEOUT + steps * WORKFLOW_TASK_TIMEOUT_PER_STEP,
               WORKFLOW_TASK_TIMEOUT_MAX)  # fmt: skip


class RunRequestError(ValueError):
    """A run request or control request refused before anything was written."""


class ControlRefusedError(RunRequestError):
    """The run refused a control update (its validator; no history event was written).
    ``kind``: ControlMalformed, ControlNotAllowed or ControlNotApplicable."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class NoAnswerError(RunRequestError):
    """No worker answered the control update in time (none running for the task queue)."""


class RunIdInUseError(RunRequestError):
    """The run id is taken (by any tenant): refused with the same words whoever holds it."""


def validate_run_input(payload: dict[str, Any]) -> RunInput:
    size = len(json.dumps(payload, default=str).encode())
    if size > MAX_RUN_INPUT_BYTES:
        raise RunRequestError(
            f"invalid run: its input is {size} bytes; at most {MAX_RUN_INPUT_BYTES} (larger data "
            "belongs in a step that fetches it, e.g. http, or in a tenant secret)"
        )
    try:
        run_input = RunInput.model_validate(payload)
    except ValidationError as exc:
        raise RunRequestError(f"invalid run: {describe(exc)}") from None
    if run_input.run_id is None:
        run_input = run_input.model_copy(update={"run_id": uuid.uuid4().hex[:16]})
    return run_input


async def start_run(
    client: Client,
    task_queue: str,
    payload: dict[str, Any],
    *,
    start_signal: tuple[str, dict[str, Any]] | None = None,
) -> WorkflowHandle:
    """Validate, then start RunWorkflow with id run-<run_id>; a duplicate id is refused
    (while Temporal still holds a closed workflow of that id: by its id reuse policy; after
    that, by the workflow itself when it opens: RunIdInUse)."""
    run_input = validate_run_input(payload)
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(search_attributes.TENANT_ID, run_input.tenant_id),
            SearchAttributePair(search_attributes.RUN_PHASE, Phase.CREATED.value),
            SearchAttributePair(search_attributes.RUN_STATUS, RunStatus.QUEUED.value),
        ]
    )
    options: dict[str, Any] = {
        "id": run_workflow_id(run_input.run_id),
        "task_queue": task_queue,
        "search_attributes": attributes,
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "task_timeout": workflow_task_timeout(len(run_input.steps)),
        "static_summary": static_summary(run_input),
        "static_details": static_details(run_input),
    }
    if start_signal is not None:
        options["start_signal"], options["start_signal_args"] = start_signal[0], [start_signal[1]]
    else:
        options["id_conflict_policy"] = WorkflowIDConflictPolicy.FAIL
    try:
        return await client.start_workflow(
            "RunWorkflow",
            run_input.model_dump(mode="json", exclude_none=True),
            result_type=RunResult,
            **options,
        )
    except WorkflowAlreadyStartedError:
        raise RunIdInUseError(run_id_in_use(run_input.run_id)) from None


def static_summary(run_input: RunInput) -> str:
    """One line the Web UI shows for the run: tenant, steps, budget."""
    budget = "the tenant's budget" if run_input.budget is None else f"budget {run_input.budget}"
    return f"{run_input.tenant_id}: {len(run_input.steps)} steps, {budget}"


def static_details(run_input: RunInput) -> str:
    """The run's steps and who submitted it, as the Web UI shows them (markdown)."""
    steps = "\n".join(f"{i + 1}. {s.skill}" for i, s in enumerate(run_input.steps))
    who = run_input.submitted_by
    submitted = f"submitted by {who.id} ({who.authority})" if who else "no submitter named"
    return f"**run {run_input.run_id}** of tenant {run_input.tenant_id}, {submitted}\n\n{steps}"


async def run_result(handle: WorkflowHandle) -> RunResult:
    """How the run ended, whether its workflow completed (a succeeded run, and every run
    started before patch failed-runs-fail-the-workflow) or failed with the run's result in
    its details (a FAILED run); any other workflow failure is raised."""
    try:
        return RunResult.model_validate(await handle.result())
    except WorkflowFailureError as exc:
        result = failed_run_result(exc)
        if result is None:
            raise
        return result


def failed_run_result(exc: WorkflowFailureError) -> RunResult | None:
    """The RunResult a FAILED run's workflow failure carries, if it is one."""
    cause = exc.cause
    if not isinstance(cause, ApplicationError) or cause.type not in RUN_FAILURE_TYPES.values():
        return None
    return RunResult.model_validate(cause.details[0])


def run_id_in_use(run_id: str) -> str:
    """The refusal of a taken run id: the same words whoever holds it."""
    return f"run id {run_id!r} is already in use; start the run under another id"


async def running_handle(client: Client, run_id: str) -> WorkflowHandle:
    """The handle of a run that exists; RunRequestError names an unknown run."""
    handle = client.get_workflow_handle(run_workflow_id(run_id))
    try:
        await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise RunRequestError(f"unknown run {run_id!r}") from None
        raise
    return handle


async def run_status(client: Client, run_id: str) -> RunStatusView:
    handle = await running_handle(client, run_id)
    return await handle.query("status", result_type=RunStatusView)


CONTROL_MODELS = {"pause": PauseRequest, "resume": ResumeRequest, "stop": StopRequest,
                  "approve": ApproveRequest}  # fmt: skip


CONTROL_UPDATES = {"pause": "pause_run", "resume": "resume_run", "stop": "stop_run",
                   "approve": "approve_step"}  # fmt: skip
REFUSAL_KINDS = ("ControlMalformed", "ControlNotAllowed", "ControlNotApplicable")
ANSWER_WITHIN = timedelta(seconds=10)


async def _open_handle(client: Client, run_id: str, name: str, payload: dict[str, Any]):  # noqa: ANN202
    try:
        CONTROL_MODELS[name].model_validate(payload)
    except ValidationError as exc:
        raise RunRequestError(f"invalid {name}: {describe(exc)}") from None
    handle = await running_handle(client, run_id)
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        raise RunRequestError(f"run {run_id} has ended ({description.status.name}); cannot {name}")
    return handle


async def signal_run(client: Client, run_id: str, name: str, payload: dict[str, Any]) -> None:
    """Validate a pause/resume/stop payload and send it to a run that is still open (a
    signal: no answer; Temporal buffers it until a worker runs the workflow)."""
    handle = await _open_handle(client, run_id, name, payload)
    await handle.signal(name, payload)


async def control_run(
    client: Client,
    run_id: str,
    name: str,
    payload: dict[str, Any],
    *,
    update_id: str | None = None,
    answer_within: timedelta = ANSWER_WITHIN,
) -> RunStatusView | None:
    """Pause, resume, stop or approve a step of a run with its Update
    (workflows.control_updates) and return its state. A refusal is ControlRefusedError
    with the run's reason (nothing was written to the history). A run no worker has run
    yet cannot answer: the request goes as the signal (Temporal buffers it; the run
    applies it at its first step) and None is returned; so does a pause or stop no
    worker answers within ``answer_within`` (both are idempotent); a resume or an
    approval without an answer is NoAnswerError."""
    handle = await _open_handle(client, run_id, name, payload)
    if not await _has_run(handle):
        await handle.signal(name, payload)
        return None
    try:
        return await handle.execute_update(
            CONTROL_UPDATES[name],
            payload,
            id=update_id,
            result_type=RunStatusView,
            rpc_timeout=answer_within,
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type in REFUSAL_KINDS:
            raise ControlRefusedError(cause.type, cause.message) from None
        raise
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        if name in ("pause", "stop"):
            await handle.signal(name, payload)
            return None
        raise NoAnswerError(
            f"run {run_id}: no worker answered the {name} within "
            f"{answer_within.total_seconds():g} s (is a worker running?)"
        ) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # it closed meanwhile
            raise RunRequestError(f"run {run_id} has ended; cannot {name}") from None
        raise


async def _has_run(handle: WorkflowHandle, look_at: int = 8) -> bool:
    """Whether a worker has completed a workflow task of the run (its first events), or of
    the Temporal run it continued as new from."""
    seen = 0
    async for event in handle.fetch_history_events(page_size=look_at):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
        started = event.workflow_execution_started_event_attributes
        if seen == 0 and started.continued_execution_run_id and not started.cron_schedule:
            return True
        seen += 1
        if seen >= look_at:
            break
    return False


async def run_histories(
    client: Client, workflow_id: str, first_run_id: str
) -> list[WorkflowHistory]:
    """The history of every Temporal run a run took, first to last: a run that continued as
    new (workflows.continuation) goes on in a new Temporal run of the same workflow id."""
    found: list[WorkflowHistory] = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        found.append(history)
        last = history.events[-1]
        continued = last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        attrs = last.workflow_execution_continued_as_new_event_attributes
        run_id = attrs.new_execution_run_id if continued else None
    return found
