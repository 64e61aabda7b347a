"""Incident candidates (submit, promote a deferred one) and alerts, scoped to the key's tenant."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.deps import UNAUTHORIZED, Caller, client_of, sessions_of, settings_of
from api.schemas import CandidateCreate
from api.validation import check_body
from db.models import Candidate, Run
from db.queries.alerts import list_alerts
from domain.candidates import AuthorityType, PromotionResult
from domain.enums import Authority
from domain.models import ID_PATTERN, Strict
from runtime.candidates_client import (
    CandidateRequestError,
    Submitted,
    promote_candidate,
    submit_candidate,
)
from runtime.settings import Settings

router = APIRouter(tags=["candidates"], responses=UNAUTHORIZED)
ClientDep = Annotated[Client, Depends(client_of)]
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
PROMOTERS = (Authority.TENANT_ADMIN, Authority.FOUNDER_ONLY)


class PromoteBody(Strict):
    authority_type: AuthorityType = Field(
        default=AuthorityType.HUMAN_OPERATOR, description="the human authority that promotes"
    )
    justification: str | None = Field(default=None, min_length=1, max_length=1000)


def _owned_run(sessions: sessionmaker[Session], run_id: str, tenant_id: str) -> bool:
    with sessions() as session:
        run = session.get(Run, run_id)
        return run is not None and run.tenant_id == tenant_id


def _candidate_tenant(sessions: sessionmaker[Session], candidate_id: str) -> str | None:
    with sessions() as session:
        candidate = session.get(Candidate, candidate_id)
        return None if candidate is None else candidate.tenant_id


@router.post(
    "/candidates",
    status_code=status.HTTP_202_ACCEPTED,
    responses={403: {"description": "tenant_id names another tenant"}, 409: {}},
)
async def create_candidate(
    body: CandidateCreate,
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    settings: SettingsDep,
) -> Submitted:
    """Store a candidate for the key's tenant and start (or join) its promotion workflow."""
    check_body(body)
    if "tenant_id" in body.model_fields_set and body.tenant_id != caller.tenant_id:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"tenant_id: this API key acts for {caller.tenant_id!r}"
        )
    if body.source_run_id is not None and not await run_in_threadpool(
        _owned_run, sessions, body.source_run_id, caller.tenant_id
    ):
        raise HTTPException(422, f"source_run_id: unknown run {body.source_run_id!r}")
    payload = body.model_dump(mode="json", exclude_none=True) | {"tenant_id": caller.tenant_id}
    try:
        submitted, _ = await submit_candidate(client, sessions, settings.task_queue, payload)
    except CandidateRequestError as exc:
        code = status.HTTP_409_CONFLICT if "already exists" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None
    return submitted


@router.post(
    "/candidates/{candidate_id}/promote",
    responses={
        403: {"description": "the key's authority may not promote"},
        404: {"description": "unknown candidate, or one of another tenant"},
        409: {"description": "the candidate is not DEFERRED, or is being processed"},
    },
)
async def promote(
    candidate_id: Annotated[str, Path(pattern=ID_PATTERN, description="the candidate id")],
    caller: Caller,
    client: ClientDep,
    sessions: SessionsDep,
    settings: SettingsDep,
    body: Annotated[PromoteBody | None, Body()] = None,
) -> PromotionResult:
    """Manual promotion of a DEFERRED candidate by TENANT_ADMIN or FOUNDER_ONLY; waits for
    the decision (the key is the actor, ``authority_type`` the human authority it claims)."""
    check_body(body)
    tenant = await run_in_threadpool(_candidate_tenant, sessions, candidate_id)
    if tenant != caller.tenant_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown candidate {candidate_id!r}")
    if caller.authority not in PROMOTERS:
        allowed = ", ".join(PROMOTERS)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{caller.authority} may not promote (allowed: {allowed})"
        )
    body = body or PromoteBody()
    try:
        return await promote_candidate(
            client,
            sessions,
            settings.task_queue,
            candidate_id,
            actor=caller.actor_id,
            authority_type=body.authority_type.value,
            justification=body.justification,
        )
    except CandidateRequestError as exc:
        refused_authority = str(exc).startswith(("authority:", "invalid authority"))
        raise HTTPException(422 if refused_authority else 409, str(exc)) from None


@router.get("/alerts", tags=["alerts"])
def alerts(
    caller: Caller,
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="newest first")] = 50,
) -> list[dict[str, Any]]:
    """The newest alerts of the key's tenant."""
    with sessions() as session:
        return list_alerts(session, caller.tenant_id, limit)
