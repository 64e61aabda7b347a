"""The FastAPI application: ``create_app(settings, sessions, client)``.

Every route but /healthz needs an X-API-Key header. Validation errors are 422 and name
the field (``detail[].loc`` and a one-line ``error``); nothing is written or started on
a rejected request.
"""

import logging
from datetime import timedelta

from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from api.routes import candidates, evidence, runs
from api.schemas import Health
from runtime.settings import Settings

log = logging.getLogger(__name__)


def describe(errors: list[dict]) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors)


async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": jsonable_encoder(errors), "error": describe(errors)},
    )


async def data_error(_: Request, exc: DataError) -> JSONResponse:
    """A value the database cannot store (the models bound what they can): the client's."""
    reason = str(exc.orig or exc).strip().splitlines()[0]
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": f"a value does not fit the database: {reason}", "error": reason},
    )


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

    return app


def _database_ok(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        log.warning("healthz: database unreachable: %s", exc)
        return False
