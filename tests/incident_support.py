"""Incidents for the lifecycle tests (services and HTTP): seeded as a run writes them."""

import uuid

from domain.enums import IncidentCategory, Severity
from domain.messages import IncidentRequest
from services import incidents
from services.ledger import Execution


def in_order(found: list) -> list:
    """Rows as they were written (a query without ORDER BY promises no order)."""
    return sorted(found, key=lambda row: (row.created_at, row.id))


def seed_incident(sessions, tenant: str, severity: Severity = Severity.HIGH) -> str:
    """An OPEN incident of a run of ``tenant``, written as a run writes it."""
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    request = IncidentRequest(run_id=run_id, tenant_id=tenant, severity=severity,
                              category=IncidentCategory.RUN_FAILURE, title="step failed",
                              description="the second step failed")  # fmt: skip
    return incidents.create_for_run(sessions, Execution(f"run-{run_id}", "e1"), request).incident_id
