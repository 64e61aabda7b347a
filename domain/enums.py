"""Enumerations shared by workflows, activities, the database and the CLI."""

from enum import StrEnum


class Phase(StrEnum):
    """Run Orchestration Kernel phases (DESIGN.md, "Run lifecycle")."""

    CREATED = "CREATED"
    AUTHORIZED = "AUTHORIZED"
    EXECUTING = "EXECUTING"
    GOVERNANCE_CHECK = "GOVERNANCE_CHECK"
    FINALIZING = "FINALIZING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class RunStatus(StrEnum):
    """Run status; which ones a phase allows is in ``domain.phases``."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    FAILED_POLICY = "failed_policy"
    CANCELLED = "cancelled"


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class AuthorizationDecision(StrEnum):
    ALLOWED = "ALLOWED"
    DENIED = "DENIED"


class ObservabilityMode(StrEnum):
    """What a trace failure does to a run (FIX-004)."""

    STRICT = "STRICT"
    DEGRADED = "DEGRADED"
    PERMISSIVE = "PERMISSIVE"


class ObservabilityStatus(StrEnum):
    OK = "OK"
    DEGRADED = "DEGRADED"


class AckStatus(StrEnum):
    ACKED = "ACKED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"


class RecordStatus(StrEnum):
    """Status of a governance row; a rollback is a status, never a DELETE."""

    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"


class TraceStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    COMPLETION_ROLLED_BACK = "COMPLETION_ROLLED_BACK"


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class IncidentCategory(StrEnum):
    AUTHORIZATION_DENIED = "AUTHORIZATION_DENIED"
    RUN_FAILURE = "RUN_FAILURE"
    POLICY_VIOLATION = "POLICY_VIOLATION"
    BUDGET_BREACH = "BUDGET_BREACH"
    PAUSE_ESCALATION = "PAUSE_ESCALATION"
    CANDIDATE_PROMOTION = "CANDIDATE_PROMOTION"
    REACTOR_DOWN = "REACTOR_DOWN"  # a system incident (domain.ids.SYSTEM_TENANT)


class IncidentStatus(StrEnum):
    """An incident's lifecycle (domain.incidents): OPEN → ACKNOWLEDGED → RESOLVED, or OPEN →
    RESOLVED; ROLLED_BACK is the run's compensation, and ends it."""

    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"
    ROLLED_BACK = "ROLLED_BACK"


class PolicyOutcome(StrEnum):
    """Outcome of one matching policy rule (a prevention record). REQUIRE_APPROVAL is judged
    before a step only: the run pauses (APPROVAL_REQUIRED) until that step is approved."""

    PREVENTED = "PREVENTED"
    BLOCKED = "BLOCKED"
    WARNED = "WARNED"
    REQUIRE_APPROVAL = "REQUIRE_APPROVAL"


class EvaluationOutcome(StrEnum):
    """Outcome of a whole policy evaluation: the worst of its records, or PASSED."""

    PASSED = "PASSED"
    WARNED = "WARNED"
    PREVENTED = "PREVENTED"
    BLOCKED = "BLOCKED"


class RuleKind(StrEnum):
    """What a policy rule looks at."""

    MAX_COST = "MAX_COST"
    MAX_STEPS = "MAX_STEPS"
    SKILL_USED = "SKILL_USED"


class PolicyDecision(StrEnum):
    """Mid-execution policy check decision (FIX-005)."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    TERMINATE = "TERMINATE"
    SKIP = "SKIP"


class ViolationType(StrEnum):
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    POLICY_DISABLED = "POLICY_DISABLED"
    MANUAL_STOP = "MANUAL_STOP"
    TENANT_SUSPENDED = "TENANT_SUSPENDED"
    LIMIT_CHANGED = "LIMIT_CHANGED"
    STEP_PREVENTED = "STEP_PREVENTED"  # a rule stopped a step before it ran


class PauseReason(StrEnum):
    POLICY_CHANGE = "POLICY_CHANGE"
    BUDGET_WARNING = "BUDGET_WARNING"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
    RATE_LIMIT_SOFT = "RATE_LIMIT_SOFT"
    MANUAL_PAUSE = "MANUAL_PAUSE"


class Authority(StrEnum):
    """Who acts on a run (and who may resume a pause)."""

    TENANT_ADMIN = "TENANT_ADMIN"
    TENANT_USER = "TENANT_USER"
    SYSTEM_AUTO = "SYSTEM_AUTO"
    API_KEY_OWNER = "API_KEY_OWNER"
    FOUNDER_ONLY = "FOUNDER_ONLY"


class PauseTimeoutBehavior(StrEnum):
    TERMINATE = "TERMINATE"
    CONTINUE = "CONTINUE"
    ESCALATE = "ESCALATE"
