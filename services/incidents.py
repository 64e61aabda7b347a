"""The incidents domain: the incident a run's outcome calls for and its compensation, and
the incident a promoted candidate gets (services.promotions). The one writer of
``incidents``.
"""

from sqlalchemy.orm import Session, sessionmaker

from db.models import Incident
from domain import contract
from domain.candidates import ApplyDecisionRequest
from domain.enums import AckStatus, IncidentCategory
from domain.ids import derive_id
from domain.messages import Done, IncidentRequest, IncidentResult, RollbackRequest
from services.ledger import Execution, ack, audit_entry, run_once, utcnow


def incident_id_for(run_id: str, key: str = "create_incident") -> str:
    return derive_id(run_id, "incident", key)


def create_for_run(
    sessions: sessionmaker[Session], execution: Execution, req: IncidentRequest
) -> IncidentResult:
    """The incident, its ack and its audit-ledger entry, once per incident key."""

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
            after_state={"run_id": req.run_id, "category": req.category,
                         "severity": req.severity},
        )  # fmt: skip
        return IncidentResult(incident_id=incident_id)

    return run_once(sessions, execution, f"incidents.create:{req.key}", IncidentResult, write,
                    tenant_id=req.tenant_id)  # fmt: skip


def rollback(sessions: sessionmaker[Session], execution: Execution, req: RollbackRequest) -> None:
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

    run_once(sessions, execution, "incidents.rollback", Done, write, tenant_id=req.tenant_id)


def create_for_candidate(session: Session, req: ApplyDecisionRequest) -> None:
    """A promoted candidate's one incident (id from the decision), unless it exists, in the
    decision's transaction."""
    c, d = req.candidate, req.decision
    if session.get(Incident, d.incident_id) is not None:
        return
    session.add(
        Incident(
            id=d.incident_id,
            tenant_id=c.tenant_id,
            source_run_id=c.source_run_id,
            category=IncidentCategory.CANDIDATE_PROMOTION,
            severity=c.severity,
            title=f"Candidate {c.candidate_id} promoted: {c.severity} on {c.service}"[:300],
            description=d.reason,
            status="OPEN",
            details={
                "candidate_id": c.candidate_id,
                "decision_id": d.decision_id,
                "policy_id": d.policy_id,
                "policy_version": d.policy_version,
                "authority": d.authority.model_dump(mode="json"),
                "correlation_rule_id": c.correlation_rule_id,
                "correlation_rule_version": c.correlation_rule_version,
                "signal_count": c.signal_count,
                "service": c.service,
                "context_hash": d.context_hash,
            },
            created_at=req.decided_at,
        )
    )
