"""The audit domain: amend a run's contract when its path changes, and reconcile one run
against its contract (the expectations and acks themselves: services.ledger)."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditExpectation, DomainAck
from domain.enums import AckStatus
from domain.messages import AmendContractRequest, Done, ReconcileRunResult
from domain.reconciler import AckRow, ExpectationRow, reconcile_before_finalize
from services.ledger import Execution, amend_expectations, run_once, utcnow


def load_contract(session: Session, run_id: str) -> tuple[list[ExpectationRow], list[AckRow]]:
    expectations = [
        ExpectationRow(e.domain, e.action, e.deadline, e.withdrawn_at is not None)
        for e in session.scalars(select(AuditExpectation).where(AuditExpectation.run_id == run_id))
    ]
    acks = [
        AckRow(a.domain, a.action, a.status == AckStatus.ROLLED_BACK)
        for a in session.scalars(select(DomainAck).where(DomainAck.run_id == run_id))
    ]
    return expectations, acks


def amend_contract(
    sessions: sessionmaker[Session], execution: Execution, req: AmendContractRequest
) -> None:
    """Withdraw (never delete) expectations the run will not meet; declare new ones."""

    def write(session: Session) -> Done:
        amend_expectations(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            reason=req.reason,
            withdraw_all_open=req.withdraw_all_open,
            withdraw=req.withdraw,
            declare=req.declare,
            now=utcnow(),
        )
        return Done()

    run_once(sessions, execution, f"audit.amend_contract:{req.key}", Done, write,
             tenant_id=req.tenant_id)  # fmt: skip


def reconcile_run(sessions: sessionmaker[Session], run_id: str) -> ReconcileRunResult:
    """The run's own reconciliation before it finalizes (read-only)."""
    with sessions() as session:
        return reconcile_in(session, run_id)


def reconcile_in(session: Session, run_id: str) -> ReconcileRunResult:
    """The run's own reconciliation, read in ``session`` (and its transaction, if any)."""
    expectations, acks = load_contract(session, run_id)
    result = reconcile_before_finalize(expectations, acks, utcnow())
    return ReconcileRunResult(status=result.status, missing=result.missing, drift=result.drift)
