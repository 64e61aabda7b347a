"""The key's tenant's incidents: list them, acknowledge and resolve them.

A change acts as the key (actor ``apikey:<id>``, the key's authority); the body gives only
the note. Another tenant's incident is answered exactly like an unknown one (404); a change
the incident's status does not allow (resolved twice, acknowledging a resolved or a
rolled-back one) is a 409; nothing is written on either.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy.orm import Session, sessionmaker

from api.deps import UNAUTHORIZED, Caller, sessions_of
from api.validation import check_body
from domain.enums import IncidentStatus, Severity
from domain.incidents import IncidentView
from domain.models import ID_PATTERN, Strict
from services import incidents
from services.errors import AdminError, IncidentStateError, UnknownIncident

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=UNAUTHORIZED)
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
IncidentId = Annotated[str, Path(pattern=ID_PATTERN, description="the incident id")]
CHANGE_RESPONSES: dict[int | str, dict] = {
    404: {"description": "unknown incident, or one of another tenant"},
    409: {"description": "the incident's status does not allow the change"},
}


class IncidentNote(Strict):
    """A lifecycle change: only the note. Who acts is the API key; a body naming anything
    else (an actor, say) is refused, 422 naming the field."""

    note: str | None = Field(default=None, min_length=1, max_length=incidents.MAX_NOTE_CHARS)


@router.get("")
async def list_incidents(
    caller: Caller,
    sessions: SessionsDep,
    incident_status: Annotated[IncidentStatus | None, Query(alias="status")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    run_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="the source run")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="newest first")] = 50,
) -> list[IncidentView]:
    """The newest incidents of the key's tenant, of one status, severity or run when given."""
    return await run_in_threadpool(
        incidents.list_incidents, sessions, tenant_id=caller.tenant_id, status=incident_status,
        severity=severity, run_id=run_id, limit=limit,
    )  # fmt: skip


async def _change(
    change: Callable[..., IncidentView],
    sessions: sessionmaker[Session],
    incident_id: str,
    caller: Caller,
    body: IncidentNote | None,
) -> IncidentView:
    check_body(body)
    try:
        return await run_in_threadpool(
            change, sessions, incident_id, actor=caller.actor_id,
            note=(body or IncidentNote()).note, tenant_id=caller.tenant_id,
            authority=caller.authority,
        )  # fmt: skip
    except UnknownIncident as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    except IncidentStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except AdminError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.post("/{incident_id}/acknowledge", responses=CHANGE_RESPONSES)
async def acknowledge(
    incident_id: IncidentId,
    caller: Caller,
    sessions: SessionsDep,
    body: Annotated[IncidentNote | None, Body()] = None,
) -> IncidentView:
    """OPEN → ACKNOWLEDGED, as the key; audited, and announced (``incident.acknowledged``)."""
    return await _change(incidents.acknowledge, sessions, incident_id, caller, body)


@router.post("/{incident_id}/resolve", responses=CHANGE_RESPONSES)
async def resolve(
    incident_id: IncidentId,
    caller: Caller,
    sessions: SessionsDep,
    body: Annotated[IncidentNote | None, Body()] = None,
) -> IncidentView:
    """OPEN or ACKNOWLEDGED → RESOLVED, once, as the key; audited, and announced
    (``incident.resolved``)."""
    return await _change(incidents.resolve, sessions, incident_id, caller, body)
