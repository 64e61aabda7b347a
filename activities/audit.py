"""Audit facade: amend the contract when a run's path changes; reconcile one run (the
writes and reads: services.audit)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution
from domain.messages import AmendContractRequest, ReconcileRunResult
from services import audit


class AuditActivities:
    """Writes and checks of the audit contract."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="audit.amend_contract")
    def amend_contract(self, req: AmendContractRequest) -> None:
        """Withdraw (never delete) expectations the run will not meet; declare new ones."""
        audit.amend_contract(self.sessions, current_execution(), req)

    @activity.defn(name="audit.reconcile_run")
    def reconcile_run(self, run_id: str) -> ReconcileRunResult:
        """The run's own reconciliation before it finalizes (read-only)."""
        return audit.reconcile_run(self.sessions, run_id)
