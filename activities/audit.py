"""Audit facade: amend the contract when a run's path changes; reconcile one run."""

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.ledger import run_once, utcnow
from db.models import AuditExpectation, DomainAck
from domain.contract import FINALIZE_RUN
from domain.enums import AckStatus
from domain.ids import derive_id
from domain.messages import AmendContractRequest, Done, ReconcileRunResult
from domain.reconciler import AckRow, ExpectationRow, reconcile_before_finalize


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


class AuditActivities:
    """Writes and checks of the audit contract."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="audit.amend_contract")
    def amend_contract(self, req: AmendContractRequest) -> None:
        """Withdraw (never delete) expectations the run will not meet; declare new ones."""

        def write(session: Session) -> Done:
            now = utcnow()
            still_open = (
                AuditExpectation.run_id == req.run_id,
                AuditExpectation.acked_at.is_(None),
                AuditExpectation.withdrawn_at.is_(None),
            )
            if req.withdraw_all_open:
                session.execute(
                    update(AuditExpectation)
                    .where(*still_open, AuditExpectation.action != FINALIZE_RUN[1])
                    .values(withdrawn_at=now, withdrawn_reason=req.reason)
                )
            for domain, action in req.withdraw:
                session.execute(
                    update(AuditExpectation)
                    .where(
                        *still_open,
                        AuditExpectation.domain == domain,
                        AuditExpectation.action == action,
                    )
                    .values(withdrawn_at=now, withdrawn_reason=req.reason)
                )
            finalize = session.scalars(
                select(AuditExpectation).where(
                    AuditExpectation.run_id == req.run_id,
                    AuditExpectation.action == "finalize_run",
                )
            ).first()
            deadline = finalize.deadline if finalize else None
            for domain, action in req.declare:
                session.merge(
                    AuditExpectation(
                        id=derive_id(req.run_id, "expectation", domain, action),
                        run_id=req.run_id,
                        tenant_id=req.tenant_id,
                        domain=domain,
                        action=action,
                        deadline=deadline,
                        created_at=now,
                    )
                )
            return Done()

        run_once(
            self.sessions, f"audit.amend_contract:{req.key}", Done, write, tenant_id=req.tenant_id
        )

    @activity.defn(name="audit.reconcile_run")
    def reconcile_run(self, run_id: str) -> ReconcileRunResult:
        """The run's own reconciliation before it finalizes (read-only)."""
        with self.sessions() as session:
            return reconcile_in(session, run_id)


def reconcile_in(session: Session, run_id: str) -> ReconcileRunResult:
    """The run's own reconciliation, read in ``session`` (and its transaction, if any)."""
    expectations, acks = load_contract(session, run_id)
    result = reconcile_before_finalize(expectations, acks, utcnow())
    return ReconcileRunResult(status=result.status, missing=result.missing, drift=result.drift)
