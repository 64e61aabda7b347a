"""The FastAPI application: ``create_app(settings, sessions, client)``.

Every route but /healthz (and the OpenAPI documents) needs an X-API-Key header, checked
before the body is read; a body over HTTP_MAX_BODY_BYTES is a 413 before that, unread.
Validation errors are 422 and name the field (``detail[].loc`` and a one-line ``error``,
never the offending input at length: ``api.errors``); nothing is written or started on a
rejected request.
"""

import logging
from datetime import timedelta

from fastapi import FastAPI, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import data_error, validation_error
from api.middleware import AuthenticationMiddleware, BodyLimitMiddleware, StrictJsonMiddleware
from api.routes import candidates, evidence, governance, incidents, runs, sinks, skills
from api.schemas import Health
from runtime.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, sessions: sessionmaker[Session], client: Client) -> FastAPI:
    app = FastAPI(
        title="governed-runs",
        version="0.1.0",
        description="Start, control and inspect governed LLM runs (tenant-scoped API keys).",
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.client = client
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(DataError, data_error)
    app.include_router(runs.router)
    app.include_router(evidence.router)
    app.include_router(candidates.router)
    app.include_router(governance.router)
    app.include_router(incidents.router)
    app.include_router(sinks.router)
    app.include_router(skills.router)
    skills.installed_catalog()  # discovered now: a plugin that fails to load is logged at start

    @app.get("/healthz", tags=["health"], response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> JSONResponse:
        """Database and Temporal reachability (no API key needed)."""
        database = await run_in_threadpool(_database_ok, sessions)
        try:
            temporal = await client.service_client.check_health(timeout=timedelta(seconds=3))
        except (RPCError, RuntimeError):
            temporal = False
        body = Health(
            status="ok" if database and temporal else "degraded",
            database="ok" if database else "unreachable",
            temporal="ok" if temporal else "unreachable",
        )
        code = status.HTTP_200_OK if database and temporal else status.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse(body.model_dump(), status_code=code)

    _install_gates(app, settings, sessions)
    return app


def _install_gates(app: FastAPI, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Body limit, then API key, then strict JSON: each before any route reads the body
    (the middleware added last runs first)."""
    docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    public = {"/healthz", *(path for path in docs if path)}
    app.add_middleware(StrictJsonMiddleware)
    app.add_middleware(AuthenticationMiddleware, sessions=sessions, public_paths=public)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.http_max_body_bytes)


def _database_ok(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        log.warning("healthz: database unreachable: %s", exc)
        return False
