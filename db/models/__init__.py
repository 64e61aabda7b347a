"""All tables; importing this package registers every model on ``Base.metadata``."""

from db.models.audit import AuditExpectation, AuditLedgerEntry, DomainAck, IdempotencyRecord
from db.models.base import Base
from db.models.control import PauseRecord, PolicyCheck, StopRequest
from db.models.events import OutboxEvent
from db.models.governance import (
    Incident,
    LimitBreach,
    PolicyEvaluation,
    PolicyRule,
    PreventionRecord,
)
from db.models.runs import Run, RunPhaseTransition, Tenant
from db.models.traces import Trace, TraceStep

__all__ = [
    "AuditExpectation",
    "AuditLedgerEntry",
    "Base",
    "DomainAck",
    "IdempotencyRecord",
    "Incident",
    "LimitBreach",
    "OutboxEvent",
    "PauseRecord",
    "PolicyCheck",
    "PolicyEvaluation",
    "PolicyRule",
    "PreventionRecord",
    "Run",
    "RunPhaseTransition",
    "StopRequest",
    "Tenant",
    "Trace",
    "TraceStep",
]
