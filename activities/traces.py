"""Traces facade: start, complete and revert completion (the writes: services.traces)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution
from domain.messages import RollbackRequest, TraceCompleted, TraceRequest, TraceStarted
from services import traces


class TraceActivities:
    """Writes of the traces domain."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn(name="traces.start")
    def start(self, req: TraceRequest) -> TraceStarted:
        """The trace row and its ack; ``req.enter`` (EXECUTING) commits with them."""
        return traces.start_trace(self.sessions, current_execution(), req)

    @activity.defn(name="traces.complete")
    def complete(self, req: TraceRequest) -> TraceCompleted:
        """Head hash and step count from the chain; with ``req.reconcile``, the run's own
        reconciliation read after the ack."""
        return traces.complete_trace(self.sessions, current_execution(), req)

    @activity.defn(name="traces.revert_completion")
    def revert_completion(self, req: RollbackRequest) -> None:
        """Compensation: mark the completion rolled back (if present); the chain is kept."""
        traces.revert_completion(self.sessions, current_execution(), req)
