"""Runs: start, read, and control (pause, resume, stop) through the run's Updates."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.admission import RETRY_AFTER_SECONDS, admit_run, run_id_in_use
from api.deps import (
    QUERY_TIMEOUT,
    UNAUTHORIZED,
    Caller,
    RunId,
    client_of,
    not_found,
    owned_workflow,
    sessions_of,
    settings_of,
)
from api.errors import clip
from api.schemas import (
    ApproveBody,
    ControlAccepted,
    ErrorBody,
    PauseBody,
    RunAccepted,
    RunCreate,
    RunView,
    StopBody,
)
from api.validation import check_body, check_encoded_size
from clients.runs import (
    ControlRefusedError,
    NoAnswerError,
    RunIdInUseError,
    RunRequestError,
    control_run,
    start_run,
)
from db.models import Run
from db.queries.evidence import run_usage
from domain.evidence import ModelUsage
from domain.models import RunStatusView
from runtime.settings import Settings
from services import control
from services.api_keys import Principal

router = APIRouter(prefix="/runs", tags=["runs"], responses=UNAUTHORIZED)
ClientDep = Annotated[Client, Depends(client_of)]
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
NOT_FOUND = {404: {"description": "unknown run, or a run of another tenant"}}


START_REFUSALS: dict[int | str, dict] = {
    403: {
        "model": ErrorBody,
        "description": "an option loosens the tenant's governance settings, and the tenant "
        "does not allow the key's authority to loosen it",
    },
    409: {"model": ErrorBody, "description": "the run id is in use (by any tenant)"},
    413: {"model": ErrorBody, "description": "the body is larger than HTTP_MAX_BODY_BYTES"},
    429: {
        "model": ErrorBody,
        "description": f"the tenant's runs in flight are at its limit (Retry-After: "
        f"{RETRY_AFTER_SECONDS} s)",
    },
}


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=START_REFUSALS)
async def create_run(
    body: RunCreate,
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    settings: Annotated[Settings, Depends(settings_of)],
) -> RunAccepted:
    """Start RunWorkflow for the key's tenant, submitted as the key; 403 when an option
    loosens the tenant's settings without its leave, 409 when the run id is in use (by
    anyone), 429 when the tenant has its limit of runs in flight."""
    check_body(body)
    payload = {
        "tenant_id": caller.tenant_id,
        **body.model_dump(mode="json", exclude_none=True),
        "submitted_by": {"id": caller.actor_id, "authority": caller.authority},
    }
    check_encoded_size(payload)
    await run_in_threadpool(admit_run, sessions, settings, caller.tenant_id, body.run_id,
                            body.options, caller.authority)  # fmt: skip
    try:
        handle = await start_run(client, settings.task_queue, payload)
    except RunRequestError as exc:
        if isinstance(exc, RunIdInUseError):
            raise run_id_in_use(body.run_id) from None
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, clip(str(exc))) from None
    except WorkflowAlreadyStartedError:
        raise run_id_in_use(body.run_id) from None
    return RunAccepted(
        run_id=handle.id.removeprefix("run-"), workflow_id=handle.id, tenant_id=caller.tenant_id
    )


@router.get("/{run_id}", responses=NOT_FOUND)
async def get_run(
    run_id: RunId, caller: Caller, client: ClientDep, sessions: SessionsDep
) -> RunView:
    """Live state from the workflow's status query while it runs, else the run row; with
    the usage per model of its llm calls so far (from its trace)."""
    try:
        handle, description = await owned_workflow(client, run_id, caller)
    except HTTPException:
        row = await run_in_threadpool(_run_row, sessions, run_id, caller.tenant_id)
        if row is None:
            raise
        return _from_row(row, "UNKNOWN")
    view = await _live_status(handle, description)
    if view is not None:
        usage = await run_in_threadpool(_usage, sessions, run_id)
        return RunView(**view.model_dump(), workflow_status=description.status.name,
                       source="workflow", usage=usage)  # fmt: skip
    row = await run_in_threadpool(_run_row, sessions, run_id, caller.tenant_id)
    return (
        _from_row(row, _status_name(description))
        if row
        else _not_created(run_id, caller, description)
    )


def _usage(sessions: sessionmaker[Session], run_id: str) -> list[ModelUsage]:
    with sessions() as session:
        return run_usage(session, run_id)


async def _live_status(
    handle: WorkflowHandle, description: WorkflowExecutionDescription
) -> RunStatusView | None:
    """The status query of a running workflow; None when closed or no worker answers."""
    if description.status != WorkflowExecutionStatus.RUNNING:
        return None
    try:
        return await handle.query("status", result_type=RunStatusView, rpc_timeout=QUERY_TIMEOUT)
    except RPCError:
        return None


def _status_name(description: WorkflowExecutionDescription) -> str:
    return description.status.name if description.status else "UNKNOWN"


def _run_row(sessions: sessionmaker[Session], run_id: str, tenant_id: str) -> dict[str, Any] | None:
    with sessions() as session:
        run = session.get(Run, run_id)
        if run is None or run.tenant_id != tenant_id:
            return None
        return {
            "run_id": run.id,
            "tenant_id": run.tenant_id,
            "phase": run.phase,
            "status": run.status,
            "step_index": run.steps_done,
            "steps_total": run.steps_total,
            "cost": run.cost,
            "budget": run.budget,
            "failure_reason": run.failure_reason,
            "usage": run_usage(session, run.id),
        }


def _from_row(row: dict[str, Any], workflow_status: str) -> RunView:
    return RunView(**row, workflow_status=workflow_status, source="database")


def _not_created(
    run_id: str, caller: Principal, description: WorkflowExecutionDescription
) -> RunView:
    """A workflow that has not written its run row (yet, or never: e.g. invalid input)."""
    return RunView(
        run_id=run_id,
        tenant_id=caller.tenant_id,
        workflow_status=_status_name(description),
        phase="CREATED",
        status="queued",
        step_index=0,
        steps_total=0,
        cost=0,
        budget=None,
        source="temporal",
    )


REFUSAL_STATUS = {
    "ControlMalformed": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "ControlNotAllowed": status.HTTP_403_FORBIDDEN,
    "ControlNotApplicable": status.HTTP_409_CONFLICT,
}


async def _control(
    client: Client,
    sessions: sessionmaker[Session],
    run_id: str,
    caller: Principal,
    name: str,
    extra: dict,
) -> ControlAccepted:
    """The run's control Update, as the key: its answer (the run's state), or its refusal
    with the reason (403/409/422; audited; nothing in the run's history)."""
    actor = {"id": caller.actor_id, "authority": caller.authority.value}
    update_id = f"{name}-{uuid.uuid4().hex}"
    try:
        state = await control_run(client, run_id, name, {"actor": actor, **extra},
                                  update_id=update_id)  # fmt: skip
    except ControlRefusedError as exc:
        who = (caller.actor_id, caller.authority.value)
        await run_in_threadpool(control.record_refused_update, sessions, run_id, update_id,
                                name, *who, str(exc))  # fmt: skip
        raise HTTPException(REFUSAL_STATUS[exc.kind], str(exc)) from None
    except NoAnswerError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except RunRequestError as exc:
        if str(exc).startswith("unknown run"):
            raise not_found(run_id) from None
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return ControlAccepted(run_id=run_id, signal=name, actor_id=caller.actor_id,
                           authority=caller.authority, state=state,
                           delivered="signal" if state is None else "update")  # fmt: skip


CONTROL = {
    **NOT_FOUND,
    409: {"description": "the run has ended, or is not in a state the request applies to"},
    422: {"description": "a malformed request"},
    503: {"description": "no worker answered within 10 s"},
}


@router.post("/{run_id}/pause", status_code=status.HTTP_202_ACCEPTED, responses=CONTROL)
async def pause_run(
    run_id: RunId,
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    body: Annotated[PauseBody | None, Body()] = None,
) -> ControlAccepted:
    """The ``pause_run`` update; the run holds at its next step boundary
    (``state.pause_requested`` until then)."""
    await owned_workflow(client, run_id, caller)
    reason = (body or PauseBody()).reason
    return await _control(client, sessions, run_id, caller, "pause", {"reason": reason.value})


@router.post(
    "/{run_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**CONTROL, 403: {"description": "the key's authority may not resume this pause"}},
)
async def resume_run(
    run_id: RunId, caller: Caller, client: ClientDep, sessions: SessionsDep
) -> ControlAccepted:
    """The ``resume_run`` update; answered once the pause is resolved. A pause the key's
    authority may not resume: 403 with the reason (audited as RESUME_REFUSED)."""
    await owned_workflow(client, run_id, caller)
    return await _control(client, sessions, run_id, caller, "resume", {})


@router.post(
    "/{run_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**CONTROL, 403: {"description": "the key's authority may not approve"}},
)
async def approve_step(
    run_id: RunId,
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    body: Annotated[ApproveBody, Body()],
) -> ControlAccepted:
    """The ``approve_step`` update: approve the step the run holds (APPROVAL_REQUIRED) by
    its digest; answered once the run goes on. Another digest, a used one or an authority
    that may not approve: 409/403 with the reason (audited)."""
    await owned_workflow(client, run_id, caller)
    return await _control(client, sessions, run_id, caller, "approve", {"digest": body.digest})


@router.post("/{run_id}/stop", status_code=status.HTTP_202_ACCEPTED, responses=CONTROL)
async def stop_run(
    run_id: RunId,
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    body: Annotated[StopBody | None, Body()] = None,
) -> ControlAccepted:
    """The ``stop_run`` update; the run ends CANCELLED at its next step boundary."""
    check_body(body)
    await owned_workflow(client, run_id, caller)
    extra = {"reason": (body or StopBody()).reason}
    return await _control(client, sessions, run_id, caller, "stop", extra)
