"""The incidents domain: the incident a run's outcome calls for and its compensation, the
incident a promoted candidate gets (services.promotions), and the lifecycle operators give
them (acknowledge, resolve: domain.incidents). The one writer of ``incidents``.

Each lifecycle change is one transaction: the incident's new status with who, when and the
note, an audit-ledger entry and an outbox event (``incident.acknowledged``,
``incident.resolved``), both keyed ``incident/<id>/<change>``. A refused change writes
nothing.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import Incident
from db.queries import incidents as incident_queries
from db.queries.incidents import incident_view
from domain import contract
from domain.candidates import ApplyDecisionRequest
from domain.enums import AckStatus, Authority, IncidentCategory, IncidentStatus, Severity
from domain.ids import SYSTEM_TENANT, derive_id
from domain.incidents import VERB, IncidentView, refusal
from domain.messages import Done, IncidentRequest, IncidentResult, RollbackRequest
from services import events
from services.errors import AdminError, IncidentStateError, UnknownIncident
from services.ledger import Execution, ack, audit_entry, run_once, utcnow

MAX_ACTOR_CHARS = 200  # incidents.acknowledged_by / resolved_by
MAX_NOTE_CHARS = 2000


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
                status=IncidentStatus.OPEN,
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
        if req.category == IncidentCategory.PAUSE_ESCALATION:  # the run is still paused:
            # published now (a run's other incidents are published with its finalization)
            events.emit(session, key=f"incident/{incident_id}", topic="incident.created",
                        tenant_id=req.tenant_id, run_id=req.run_id,
                        payload={"incident_id": incident_id})  # fmt: skip
        return IncidentResult(incident_id=incident_id)

    return run_once(sessions, execution, f"incidents.create:{req.key}", IncidentResult, write,
                    tenant_id=req.tenant_id)  # fmt: skip


def rollback(sessions: sessionmaker[Session], execution: Execution, req: RollbackRequest) -> None:
    """Compensation: status ROLLED_BACK plus a ledger entry and a rollback ack."""

    def write(session: Session) -> Done:
        incident = session.get(Incident, incident_id_for(req.run_id))
        if incident is None or incident.status == IncidentStatus.ROLLED_BACK:
            return Done()
        before = {"run_id": req.run_id, "status": incident.status}
        incident.status = IncidentStatus.ROLLED_BACK
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
            status=IncidentStatus.OPEN,
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


def open_system_incident(
    session: Session, *, key: str, category: IncidentCategory, severity: Severity,
    title: str, description: str, details: dict, now: datetime,
) -> str:  # fmt: skip
    """An incident of the operator's own tenant (SYSTEM_TENANT: a dead reactor), with its
    audit-ledger entry, in the caller's transaction; once per ``key``."""
    incident_id = derive_id("system-incident", key)
    if session.get(Incident, incident_id) is not None:
        return incident_id
    session.add(
        Incident(
            id=incident_id,
            tenant_id=SYSTEM_TENANT,
            source_run_id=None,
            category=category,
            severity=severity,
            title=title[:300],
            description=description,
            status=IncidentStatus.OPEN,
            details=details,
            created_at=now,
        )  # fmt: skip
    )
    audit_entry(session, key=f"system-incident/{key}", tenant_id=SYSTEM_TENANT,
                event_type="INCIDENT_CREATED", entity_type="incident", entity_id=incident_id,
                after_state={"category": category, "severity": severity, **details})  # fmt: skip
    return incident_id


# ----- the lifecycle: acknowledge, resolve, list -------------------------------------------


def _text(value: str | None, name: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise AdminError(f"{name}: NUL characters are not allowed")
    if len(value) > limit:
        raise AdminError(f"{name}: at most {limit} characters, got {len(value)}")
    return value


def _change(
    sessions: sessionmaker[Session],
    incident_id: str,
    target: IncidentStatus,
    *,
    actor: str,
    note: str | None,
    tenant_id: str | None,
    authority: str,
) -> IncidentView:
    """Move the incident to ``target`` (refusal: nothing written), audited and announced."""
    who = _text(actor, "actor", MAX_ACTOR_CHARS)
    if who is None:
        raise AdminError("actor: say who acts (not empty)")
    note = _text(note, "note", MAX_NOTE_CHARS)
    with sessions.begin() as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None or tenant_id not in (None, incident.tenant_id):
            raise UnknownIncident(f"unknown incident {incident_id!r}")
        why = refusal(incident.id, incident.status, target)
        if why is not None:
            raise IncidentStateError(why)
        before, now, verb = incident.status, utcnow(), VERB[target]
        incident.status = target.value
        if target == IncidentStatus.ACKNOWLEDGED:
            incident.acknowledged_at, incident.acknowledged_by = now, who
            incident.acknowledgement_note = note
        else:
            incident.resolved_at, incident.resolved_by, incident.resolution_note = now, who, note
        key = f"incident/{incident.id}/{verb}"  # each change happens once to an incident
        change = {"incident_id": incident.id, "from_status": before, "status": target.value,
                  "actor": who, "note": note}  # fmt: skip
        audit_entry(
            session,
            key=key,
            tenant_id=incident.tenant_id,
            event_type=f"INCIDENT_{target.value}",
            entity_type="incident",
            entity_id=incident.id,
            before_state={"run_id": incident.source_run_id, "status": before},
            after_state={"run_id": incident.source_run_id, **change},
            actor_id=who,
            actor_authority=authority,
            source="admin",
        )
        events.emit(session, key=key, topic=f"incident.{verb}", tenant_id=incident.tenant_id,
                    run_id=incident.source_run_id, payload=change)  # fmt: skip
        return incident_view(incident)


def acknowledge(
    sessions: sessionmaker[Session],
    incident_id: str,
    *,
    actor: str,
    note: str | None = None,
    tenant_id: str | None = None,
    authority: str = Authority.TENANT_ADMIN,
) -> IncidentView:
    """OPEN → ACKNOWLEDGED. ``tenant_id``: only an incident of that tenant (another
    tenant's is unknown to it)."""
    return _change(sessions, incident_id, IncidentStatus.ACKNOWLEDGED, actor=actor, note=note,
                   tenant_id=tenant_id, authority=authority)  # fmt: skip


def resolve(
    sessions: sessionmaker[Session],
    incident_id: str,
    *,
    actor: str,
    note: str | None = None,
    tenant_id: str | None = None,
    authority: str = Authority.TENANT_ADMIN,
) -> IncidentView:
    """OPEN or ACKNOWLEDGED → RESOLVED, once."""
    return _change(sessions, incident_id, IncidentStatus.RESOLVED, actor=actor, note=note,
                   tenant_id=tenant_id, authority=authority)  # fmt: skip


def _member(enum: type[StrEnum], value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return enum(value).value
    except ValueError:
        raise AdminError(f"unknown {name} {value!r} (one of {', '.join(enum)})") from None


def list_incidents(
    sessions: sessionmaker[Session],
    *,
    tenant_id: str | None = None,
    status: str | None = None,
    severity: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
) -> list[IncidentView]:
    """The newest ``limit`` incidents, of one tenant, status, severity or run when given."""
    status = _member(IncidentStatus, status, "status")
    severity = _member(Severity, severity, "severity")
    if limit < 1:
        raise AdminError(f"limit: at least 1, got {limit}")
    with reading(sessions) as session:
        return incident_queries.list_incidents(
            session, tenant_id=tenant_id, status=status, severity=severity, run_id=run_id,
            limit=limit,
        )  # fmt: skip
