"""The key's tenant's alert sinks: where its alerts are sent (domain.sinks), and every
delivery attempt. Any key of the tenant reads them; only a TENANT_ADMIN key adds, replaces
or removes one (audited, as the key). No response holds a secret: a URL shows as its
origin, the signing secret and the SMTP password not at all. Another tenant's sink is
answered exactly like an unknown one (404); a refused body is a 422 naming the field, and
nothing is stored.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from activities.secret_store import SecretBox, SecretKeyError
from api.deps import UNAUTHORIZED, Caller, sessions_of, settings_of
from api.validation import check_body
from db.engine import reading
from db.queries.sinks import AttemptView, SinkView, list_attempts
from domain.enums import Authority
from domain.sinks import NAME_PATTERN, SinkRequest
from services import sinks
from services.api_keys import Principal
from services.errors import AdminError

router = APIRouter(prefix="/sinks", tags=["alerts"], responses=UNAUTHORIZED)
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
SinkName = Annotated[str, Path(pattern=NAME_PATTERN, description="the sink's name")]
ADMIN_ONLY: dict[int | str, dict] = {403: {"description": "the key is not a TENANT_ADMIN key"}}
UNKNOWN: dict[int | str, dict] = {404: {"description": "unknown sink, or one of another tenant"}}


def box_of(request: Request) -> SecretBox:
    """The deployment's secrets box (SECRETS_KEY, else DATA_DIR/secrets.key: the worker's)."""
    box = getattr(request.app.state, "sink_secret_box", None)
    if box is None:
        settings = settings_of(request)
        box = SecretBox.of_deployment(settings.secrets_key, settings.data_dir)
        request.app.state.sink_secret_box = box
    return box


def _admin(caller: Principal, change: str) -> None:
    if caller.authority != Authority.TENANT_ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"only a TENANT_ADMIN key may {change} alert sinks (this key: {caller.authority})",
        )


@router.get("")
async def get_sinks(caller: Caller, sessions: SessionsDep) -> list[SinkView]:
    """The tenant's sinks by name, with their health."""
    return await run_in_threadpool(sinks.list_sinks, sessions, caller.tenant_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "the sink of that name was replaced", "model": SinkView},
               **ADMIN_ONLY, 422: {"description": "a field that is not valid, named"}},
)  # fmt: skip
async def post_sink(
    caller: Caller,
    sessions: SessionsDep,
    box: Annotated[SecretBox, Depends(box_of)],
    body: Annotated[SinkRequest, Body()],
    response: Response,
) -> SinkView:
    """Add a sink, or replace the tenant's sink of that name (its health starts afresh)."""
    _admin(caller, "change")
    check_body(body)
    try:
        view, created = await run_in_threadpool(
            sinks.save_sink, sessions, box, caller.tenant_id, body,
            actor=caller.actor_id, authority=caller.authority,
        )  # fmt: skip
    except AdminError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    except SecretKeyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**ADMIN_ONLY, **UNKNOWN})  # fmt: skip
async def delete_sink(caller: Caller, sessions: SessionsDep, name: SinkName) -> Response:
    """Remove a sink; its pending deliveries are dropped, its attempts kept."""
    _admin(caller, "remove")
    try:
        await run_in_threadpool(sinks.delete_sink, sessions, caller.tenant_id, name,
                                actor=caller.actor_id, authority=caller.authority)  # fmt: skip
    except AdminError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown sink {name!r}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/deliveries", responses=UNKNOWN)
async def get_deliveries(
    caller: Caller,
    sessions: SessionsDep,
    name: SinkName,
    limit: Annotated[int, Query(ge=1, le=500, description="newest first")] = 50,
) -> list[AttemptView]:
    """The newest delivery attempts to one of the tenant's sinks."""

    def read() -> list[AttemptView] | None:
        if sinks.stored_sink(sessions, caller.tenant_id, name) is None:
            return None
        with reading(sessions) as session:
            return list_attempts(session, caller.tenant_id, name, limit)

    found = await run_in_threadpool(read)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown sink {name!r}")
    return found
