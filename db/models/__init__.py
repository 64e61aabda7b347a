"""All tables; importing this package registers every model on ``Base.metadata``."""

from db.models.api_keys import ApiKey
from db.models.audit import AuditExpectation, AuditLedgerEntry, DomainAck, IdempotencyRecord
from db.models.base import Base
from db.models.candidates import Candidate, OrchestrationAttempt, PromotionDecisionRecord
from db.models.control import PauseRecord, PolicyCheck, StopRequest
from db.models.events import OutboxEvent
from db.models.governance import (
    Incident,
    LimitBreach,
    PolicyEvaluation,
    PolicyRule,
    PreventionRecord,
)
from db.models.notifications import AlertSink, AlertSinkAttempt
from db.models.payload_blobs import PayloadBlob
from db.models.reconciliation import (
    Alert,
    EventCursor,
    EventDelivery,
    ReactorHeartbeat,
    ReconciliationFinding,
    SuppressedAlert,
    TenantAlertSettings,
)
from db.models.runs import Run, RunPhaseTransition, Tenant
from db.models.security import StepSlot, TenantSecret
from db.models.traces import Trace, TraceStep

__all__ = [
    "Alert",
    "AlertSink",
    "AlertSinkAttempt",
    "ApiKey",
    "AuditExpectation",
    "AuditLedgerEntry",
    "Base",
    "Candidate",
    "DomainAck",
    "EventCursor",
    "EventDelivery",
    "IdempotencyRecord",
    "Incident",
    "LimitBreach",
    "OrchestrationAttempt",
    "OutboxEvent",
    "PauseRecord",
    "PayloadBlob",
    "PolicyCheck",
    "PolicyEvaluation",
    "PolicyRule",
    "PreventionRecord",
    "PromotionDecisionRecord",
    "ReactorHeartbeat",
    "ReconciliationFinding",
    "Run",
    "StepSlot",
    "RunPhaseTransition",
    "StopRequest",
    "SuppressedAlert",
    "Tenant",
    "TenantSecret",
    "TenantAlertSettings",
    "Trace",
    "TraceStep",
]
