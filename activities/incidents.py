"""Incidents facade: the incident a run's outcome calls for, and its compensation (the
writes: services.incidents)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution
from domain.messages import IncidentRequest, IncidentResult, RollbackRequest
from services import incidents


class IncidentActivities:
    """Writes of the incidents domain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="incidents.create_for_run")
    def create_for_run(self, req: IncidentRequest) -> IncidentResult:
        return incidents.create_for_run(self.sessions, current_execution(), req)

    @activity.defn(name="incidents.rollback")
    def rollback(self, req: RollbackRequest) -> None:
        """Compensation: status ROLLED_BACK plus a ledger entry and a rollback ack."""
        incidents.rollback(self.sessions, current_execution(), req)
