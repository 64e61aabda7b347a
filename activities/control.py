"""Control facade: mid-execution policy checks, pause records, refusals (the writes:
services.control)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution
from domain.messages import (
    PauseRecordRequest,
    PauseUpdateRequest,
    PolicyCheckRequest,
    PolicyCheckResult,
    RefusalRequest,
)
from services import control


class ControlActivities:
    """Reads live policy state and records every control decision."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="control.check_policy")
    def check_policy(self, req: PolicyCheckRequest) -> PolicyCheckResult:
        """Compare live tenant, budget, rules and stop requests with the run's start."""
        return control.check_policy(self.sessions, current_execution(), req)

    @activity.defn(name="control.record_pause")
    def record_pause(self, req: PauseRecordRequest) -> None:
        control.record_pause(self.sessions, current_execution(), req)

    @activity.defn(name="control.update_pause")
    def update_pause(self, req: PauseUpdateRequest) -> None:
        """WARNED (emits run.pause_expiring), ESCALATED, or a resolution of the pause."""
        control.update_pause(self.sessions, current_execution(), req)

    @activity.defn(name="control.record_refusal")
    def record_refusal(self, req: RefusalRequest) -> None:
        """Audit a refused signal; the run itself is not touched."""
        control.record_refusal(self.sessions, current_execution(), req)
