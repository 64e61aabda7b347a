"""Whether POST /runs may start a run: its options only tighten the tenant's governance
settings (or loosen them with its leave), its id is free, and the tenant has room in flight.

An option that loosens a tenant setting without leave for the key's authority is a 403
naming the option (domain.governance; the workflow refuses it the same way at open).

Run ids are global (the workflow id is ``run-<run_id>``): an id in use is a 409 with the
same text whichever tenant holds it, so the answer never tells whose run it is. A tenant
at its runs-in-flight limit (``tenants.max_runs_in_flight``, else
MAX_RUNS_IN_FLIGHT_PER_TENANT, else none) is a 429 with ``Retry-After``. Either way
nothing is started.
"""

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Run
from db.queries.limits import runs_in_flight, tenant_limits
from domain.enums import Authority
from domain.governance import LooseningRefused, resolve_config
from domain.models import RunOptions
from runtime.settings import Settings
from services.tenants import governance_of_row, tenant_of

RETRY_AFTER_SECONDS = 5
"""The Retry-After of a 429: runs end on their own time, so this is only a polite pause."""


def run_id_in_use(run_id: str | None) -> HTTPException:
    """The one answer for a taken run id, whoever holds it."""
    if run_id is None:
        return HTTPException(status.HTTP_409_CONFLICT, "the generated run id is in use; retry")
    return HTTPException(
        status.HTTP_409_CONFLICT,
        f"run id {run_id!r} is already in use; choose another or omit run_id",
    )


def too_many_runs(in_flight: int, limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"the tenant has {in_flight} runs in flight and its limit (max_runs_in_flight) is "
        f"{limit}; retry when one has ended",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _run_id_taken(session: Session, run_id: str) -> bool:
    return session.scalar(select(Run.id).where(Run.id == run_id)) is not None


def admit_run(
    sessions: sessionmaker[Session],
    settings: Settings,
    tenant_id: str,
    run_id: str | None,
    options: RunOptions | None = None,
    submitter: Authority | None = None,
) -> None:
    """Raise the 403, 409 or 429 that refuses this start, if any (reads only)."""
    with sessions() as session:
        governance = governance_of_row(tenant_of(session, tenant_id))
        try:
            resolve_config(settings.run_defaults(), governance, options or RunOptions(), submitter)
        except LooseningRefused as exc:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
        if run_id is not None and _run_id_taken(session, run_id):
            raise run_id_in_use(run_id)
        limits = tenant_limits(session, tenant_id).or_defaults(
            settings.max_runs_in_flight_per_tenant, settings.max_steps_in_flight_per_tenant
        )
        if limits.max_runs_in_flight is None:
            return
        in_flight = runs_in_flight(session, tenant_id)
        if in_flight >= limits.max_runs_in_flight:
            raise too_many_runs(in_flight, limits.max_runs_in_flight)
