"""Incident candidates (submit, promote a deferred one) and alerts, scoped to the key's tenant.

A submission is held to the tenant's promotion limits (policies it may name, the
signal_count bound: 422 naming the field and the bound). A promotion acts as the key:
actor ``apikey:<id>``, authority the key's promotion authority (or the operator's
mapping of the key's authority); the body gives only the justification.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from api.deps import UNAUTHORIZED, Caller, client_of, sessions_of, settings_of
from api.schemas import CandidateCreate, CandidatePromote
from api.validation import check_body
from clients.candidates import (
    CandidateLimitError,
    Submitted,
    promote_candidate,
    submit_candidate,
)
from db.models import Candidate, Run
from db.queries.alerts import list_alerts
from domain.candidates import AuthorityType, PromotionResult
from domain.models import ID_PATTERN
from runtime.settings import Settings
from services.api_keys import NoPromotionAuthority, Principal, promotion_authority_of
from services.errors import CandidateRequestError

router = APIRouter(tags=["candidates"], responses=UNAUTHORIZED)
ClientDep = Annotated[Client, Depends(client_of)]
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]


def _owned_run(sessions: sessionmaker[Session], run_id: str, tenant_id: str) -> bool:
    with sessions() as session:
        run = session.get(Run, run_id)
        return run is not None and run.tenant_id == tenant_id


def _outside_limits(exc: CandidateLimitError) -> RequestValidationError:
    """A 422 like any validation error, naming the field and the tenant's bound."""
    loc = ("body", *exc.field.split("."))
    return RequestValidationError([{"loc": loc, "msg": str(exc), "type": "value_error"}])


def _promotion_authority(caller: Principal, settings: Settings) -> AuthorityType:
    try:
        return promotion_authority_of(caller, settings.promotion_authorities)
    except NoPromotionAuthority as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None


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
        submitted, _ = await submit_candidate(
            client, sessions, settings.task_queue, payload,
            default_max_signal_count=settings.max_signal_count,
        )  # fmt: skip
    except CandidateLimitError as exc:
        raise _outside_limits(exc) from None
    except CandidateRequestError as exc:
        code = status.HTTP_409_CONFLICT if "already exists" in str(exc) else 422
        raise HTTPException(code, str(exc)) from None
    return submitted


@router.post(
    "/candidates/{candidate_id}/promote",
    responses={
        403: {"description": "the key has no promotion authority"},
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
    body: Annotated[CandidatePromote | None, Body()] = None,
) -> PromotionResult:
    """Manual promotion of a DEFERRED candidate; waits for the decision. The key is the
    actor (``apikey:<id>``) and its promotion authority the authority: the key's own, or
    the operator's mapping of the key's authority (PROMOTION_AUTHORITIES; none: 403)."""
    check_body(body)
    tenant = await run_in_threadpool(_candidate_tenant, sessions, candidate_id)
    if tenant != caller.tenant_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown candidate {candidate_id!r}")
    authority = _promotion_authority(caller, settings)
    try:
        return await promote_candidate(
            client,
            sessions,
            settings.task_queue,
            candidate_id,
            actor=caller.actor_id,
            authority_type=authority.value,
            justification=(body or CandidatePromote()).justification,
        )
    except CandidateRequestError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


@router.get("/alerts", tags=["alerts"])
def alerts(
    caller: Caller,
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=500, description="newest first")] = 50,
) -> list[dict[str, Any]]:
    """The newest alerts of the key's tenant."""
    with sessions() as session:
        return list_alerts(session, caller.tenant_id, limit)
