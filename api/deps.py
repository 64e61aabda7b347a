"""Request dependencies: the app's services, the caller's API key, and run ownership.

A key sees only its tenant's runs: another tenant's run is answered exactly like an
unknown run (404), so the API never tells whether a run id exists elsewhere.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from domain import search_attributes
from domain.ids import run_workflow_id
from domain.models import ID_PATTERN
from runtime.settings import Settings
from services.api_keys import Principal, authenticate

API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key (starter.py apikey create)"
)
QUERY_TIMEOUT = timedelta(seconds=5)
INVALID_KEY = "missing or invalid API key (header X-API-Key)"
KEY_CHALLENGE = {"WWW-Authenticate": "X-API-Key"}
PRINCIPAL_SCOPE_KEY = "governed_runs.principal"
UNAUTHORIZED: dict[int | str, dict] = {401: {"description": "missing or invalid API key"}}

RunId = Annotated[str, Path(pattern=ID_PATTERN, description="the run id")]


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def sessions_of(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions


def client_of(request: Request) -> Client:
    return request.app.state.client


async def require_key(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> Principal:
    """The principal of the X-API-Key header; 401 when it is missing, unknown or revoked.

    ``api.middleware.AuthenticationMiddleware`` has already checked it (before the body
    was read) and left the principal in the scope; without that middleware it is checked here.
    """
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if principal is None and key:
        principal = await run_in_threadpool(authenticate, sessions_of(request), key)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, INVALID_KEY, headers=KEY_CHALLENGE)
    return principal


Caller = Annotated[Principal, Depends(require_key)]


def not_found(run_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"unknown run {run_id!r}")


async def owned_workflow(
    client: Client, run_id: str, principal: Principal
) -> tuple[WorkflowHandle, WorkflowExecutionDescription]:
    """The run's workflow if it belongs to the caller's tenant (TenantId search attribute)."""
    handle = client.get_workflow_handle(run_workflow_id(run_id))
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise not_found(run_id) from None
        raise
    if description.typed_search_attributes.get(search_attributes.TENANT_ID) != principal.tenant_id:
        raise not_found(run_id)
    return handle, description
