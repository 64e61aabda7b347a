"""Incidents facade: the incident a run's outcome calls for, and its compensation."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.ledger import ack, audit_entry, run_once, utcnow
from db.models import Incident
from domain import contract
from domain.enums import AckStatus
from domain.ids import derive_id
from domain.messages import Done, IncidentRequest, IncidentResult, RollbackRequest


def incident_id_for(run_id: str, key: str = "create_incident") -> str:
    return derive_id(run_id, "incident", key)


class IncidentActivities:
    """Writes of the incidents domain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="incidents.create_for_run")
    def create_for_run(self, req: IncidentRequest) -> IncidentResult:
        def write(session: Session) -> IncidentResult:
            incident_id = incident_id_for(req.run_id, req.key)
            session.add(
                Incident(
                    id=incident_id,
                    tenant_id=req.tenant_id,
                    source_run_id=req.run_id,
                    category=req.category,
                    severity=req.severity,
                    title=req.title,
                    description=req.description,
                    status="OPEN",
                    details={},
                    created_at=utcnow(),
                )
            )
            ack(
                session,
                run_id=req.run_id,
                tenant_id=req.tenant_id,
                domain=contract.CREATE_INCIDENT[0],
                action=req.key,
                result_id=incident_id,
            )
            audit_entry(
                session,
                key=f"{req.run_id}/incident/{req.key}",
                tenant_id=req.tenant_id,
                event_type="INCIDENT_CREATED",
                entity_type="incident",
                entity_id=incident_id,
                after_state={
                    "run_id": req.run_id,
                    "category": req.category,
                    "severity": req.severity,
                },
            )
            return IncidentResult(incident_id=incident_id)

        return run_once(
            self.sessions,
            f"incidents.create:{req.key}",
            IncidentResult,
            write,
            tenant_id=req.tenant_id,
        )

    @activity.defn(name="incidents.rollback")
    def rollback(self, req: RollbackRequest) -> None:
        """Compensation: status ROLLED_BACK plus a ledger entry and a rollback ack."""

        def write(session: Session) -> Done:
            incident = session.get(Incident, incident_id_for(req.run_id))
            if incident is None or incident.status == "ROLLED_BACK":
                return Done()
            before = {"run_id": req.run_id, "status": incident.status}
            incident.status = "ROLLED_BACK"
            incident.rolled_back_at = utcnow()
            incident.rollback_reason = req.reason
            ack(
                session,
                run_id=req.run_id,
                tenant_id=req.tenant_id,
                domain=contract.CREATE_INCIDENT[0],
                action=contract.CREATE_INCIDENT[1],
                result_id=incident.id,
                status=AckStatus.ROLLED_BACK,
                rollback_reason=req.reason,
            )
            audit_entry(
                session,
                key=f"{req.run_id}/rollback/incident",
                tenant_id=req.tenant_id,
                event_type="ROLLBACK",
                entity_type="incident",
                entity_id=incident.id,
                before_state=before,
                after_state={"run_id": req.run_id, "status": "ROLLED_BACK", "reason": req.reason},
            )
            return Done()

        run_once(self.sessions, "incidents.rollback", Done, write, tenant_id=req.tenant_id)
