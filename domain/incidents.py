"""An incident's lifecycle and how an incident reads (services.incidents writes it).

OPEN → ACKNOWLEDGED → RESOLVED, or OPEN → RESOLVED at once; each change has an actor, a
note and a time. A resolved incident stays resolved, and a rolled-back one (its run's
compensation) is nobody's to act on any more.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.enums import IncidentStatus

# The changes an operator makes, and the statuses each may start from.
LIFECYCLE: dict[IncidentStatus, tuple[IncidentStatus, ...]] = {
    IncidentStatus.ACKNOWLEDGED: (IncidentStatus.OPEN,),
    IncidentStatus.RESOLVED: (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED),
}
VERB = {IncidentStatus.ACKNOWLEDGED: "acknowledged", IncidentStatus.RESOLVED: "resolved"}


def refusal(incident_id: str, current: str, target: IncidentStatus) -> str | None:
    """Why the incident, now ``current``, may not become ``target``; None if it may."""
    allowed = LIFECYCLE[target]
    if current in allowed:
        return None
    name = f"incident {incident_id!r}"
    if current == target:
        return f"{name} is already {current}"
    if current == IncidentStatus.ROLLED_BACK:
        return f"{name} was rolled back with its run: it cannot be {VERB[target]}"
    return f"{name} is {current}: only an {' or '.join(allowed)} incident can be {VERB[target]}"


class IncidentView(BaseModel):
    """An incident as the CLI and the HTTP API show it, with its lifecycle."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tenant_id: str
    source_run_id: str | None
    category: str
    severity: str
    status: str
    title: str
    description: str
    details: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledgement_note: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    rolled_back_at: datetime | None = None
    rollback_reason: str | None = None
