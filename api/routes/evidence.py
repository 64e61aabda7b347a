"""A run's evidence, proof and governance log (read from the database, tenant-scoped)."""

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session, sessionmaker

from api.deps import UNAUTHORIZED, Caller, RunId, not_found, sessions_of
from db.queries.evidence import UnknownRunError, governance_log, run_evidence, run_proof
from domain.evidence import GovernanceLog, RunEvidence, RunProof

router = APIRouter(prefix="/runs", tags=["evidence"], responses=UNAUTHORIZED)
SessionsDep = Annotated[sessionmaker[Session], Depends(sessions_of)]
NOT_FOUND = {404: {"description": "unknown run, or a run of another tenant"}}
T = TypeVar("T")


def _read(
    sessions: sessionmaker[Session],
    query: Callable[[Session, str, str], T],
    run_id: str,
    tenant: str,
) -> T:
    with sessions() as session:
        try:
            return query(session, run_id, tenant)
        except UnknownRunError:
            raise not_found(run_id) from None


@router.get("/{run_id}/evidence", responses=NOT_FOUND)
def get_evidence(run_id: RunId, caller: Caller, sessions: SessionsDep) -> RunEvidence:
    """Incidents, policy evaluations (prevention records, limit breaches) and decisions."""
    return _read(sessions, run_evidence, run_id, caller.tenant_id)


@router.get("/{run_id}/proof", responses=NOT_FOUND)
def get_proof(run_id: RunId, caller: Caller, sessions: SessionsDep) -> RunProof:
    """VERIFIED / FAILED / UNSUPPORTED verification of the run's trace hash chain."""
    return _read(sessions, run_proof, run_id, caller.tenant_id)


@router.get("/{run_id}/governance", responses=NOT_FOUND)
def get_governance(run_id: RunId, caller: Caller, sessions: SessionsDep) -> GovernanceLog:
    """The audit-ledger entries that carry the run id, in order."""
    return _read(sessions, governance_log, run_id, caller.tenant_id)
