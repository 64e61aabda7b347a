"""The key's tenant's governance settings: what its runs' options may only tighten, and who
may loosen which option (domain.governance). Anyone of the tenant reads them; only a
TENANT_ADMIN key changes them (audited, as the key)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from api.deps import UNAUTHORIZED, Caller, sessions_of
from domain.enums import Authority
from domain.governance import TenantGovernance
from services import tenants
from services.errors import AdminError

router = APIRouter(prefix="/governance", tags=["governance"], responses=UNAUTHORIZED)
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]


@router.get("")
async def get_governance(caller: Caller, sessions: SessionsDep) -> TenantGovernance:
    """The tenant's settings (unset fields: the worker's defaults)."""
    return await run_in_threadpool(tenants.get_governance, sessions, caller.tenant_id)


@router.put("", responses={403: {"description": "the key is not a TENANT_ADMIN key"},
                           422: {"description": "a setting that is not one, named"}})  # fmt: skip
async def put_governance(
    caller: Caller, sessions: SessionsDep, body: Annotated[dict[str, Any], Body()]
) -> TenantGovernance:
    """Replace the tenant's settings; runs that open afterwards resolve against them."""
    if caller.authority != Authority.TENANT_ADMIN:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"only a TENANT_ADMIN key may change governance settings (this key: "
            f"{caller.authority})",
        )
    try:
        view = await run_in_threadpool(
            tenants.set_governance, sessions, caller.tenant_id, body, caller.actor_id
        )
    except AdminError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return TenantGovernance.model_validate(view["governance"])
