"""The traces domain: start, complete and revert the completion. The chain itself is never
altered (its steps are written by services.steps). The one writer of ``traces`` and
``trace_steps``.
"""

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from db.models import Trace, TraceStep
from domain import contract
from domain.enums import AckStatus, TraceStatus
from domain.hashchain import GENESIS_HASH
from domain.ids import derive_id
from domain.messages import Done, RollbackRequest, TraceCompleted, TraceRequest, TraceStarted
from services.audit import reconcile_in
from services.ledger import Execution, ack, audit_entry, execute_core, insert_row, run_once, utcnow
from services.runs import commit_transition


def trace_id_for(run_id: str) -> str:
    return derive_id(run_id, "trace")


# Built once: every traced run completes its trace.
_TRACES, _STEPS = Trace.__table__, TraceStep.__table__
_LAST_STEP = (
    select(_STEPS.c.step_index, _STEPS.c.hash)
    .where(_STEPS.c.trace_id == bindparam("trace_id"))
    .order_by(_STEPS.c.step_index.desc())
    .limit(1)
)
_COMPLETE = (
    update(_TRACES)
    .where(_TRACES.c.id == bindparam("trace_id"))
    .values(
        head_hash=bindparam("head_hash"),
        step_count=bindparam("step_count"),
        status=TraceStatus.COMPLETED,
        completed_at=bindparam("completed_at"),
    )
)


def start_trace(
    sessions: sessionmaker[Session], execution: Execution, req: TraceRequest
) -> TraceStarted:
    """The trace row and its ack; ``req.enter`` (EXECUTING) commits with them."""

    def write(session: Session) -> TraceStarted:
        trace_id = trace_id_for(req.run_id)
        insert_row(
            session,
            Trace,
            id=trace_id,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            status=TraceStatus.RUNNING,
            started_at=utcnow(),
        )
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=contract.START_TRACE[0],
            action=contract.START_TRACE[1],
            result_id=trace_id,
        )
        if req.enter is not None:
            commit_transition(session, req.enter)
        return TraceStarted(trace_id=trace_id)

    return run_once(sessions, execution, "traces.start", TraceStarted, write,
                    tenant_id=req.tenant_id)  # fmt: skip


def complete_trace(
    sessions: sessionmaker[Session], execution: Execution, req: TraceRequest
) -> TraceCompleted:
    """Store the head hash and step count read from the chain itself; with
    ``req.reconcile``, also read the run's own reconciliation after the ack (the last
    governance write before the run finalizes: one round trip instead of two)."""

    def write(session: Session) -> TraceCompleted:
        trace_id = trace_id_for(req.run_id)
        params = {"trace_id": trace_id}
        last = execute_core(session, _LAST_STEP, params).first()
        count = 0 if last is None else last.step_index + 1
        head = GENESIS_HASH if last is None else last.hash
        completed = {"head_hash": head, "step_count": count, "completed_at": utcnow()}
        if execute_core(session, _COMPLETE, {**params, **completed}).rowcount != 1:
            raise NoResultFound(f"no trace {trace_id!r} for run {req.run_id!r}")
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=contract.COMPLETE_TRACE[0],
            action=contract.COMPLETE_TRACE[1],
            result_id=trace_id,
        )
        reconciliation = reconcile_in(session, req.run_id) if req.reconcile else None
        return TraceCompleted(
            trace_id=trace_id, head_hash=head, step_count=count, reconciliation=reconciliation
        )

    return run_once(sessions, execution, "traces.complete", TraceCompleted, write,
                    tenant_id=req.tenant_id)  # fmt: skip


def revert_completion(
    sessions: sessionmaker[Session], execution: Execution, req: RollbackRequest
) -> None:
    """Compensation: mark the completion rolled back (if present); the chain is kept."""

    def write(session: Session) -> Done:
        trace = session.get(Trace, trace_id_for(req.run_id))
        if trace is None or trace.status != TraceStatus.COMPLETED:
            return Done()
        before = {"run_id": req.run_id, "status": trace.status, "head_hash": trace.head_hash}
        trace.status = TraceStatus.COMPLETION_ROLLED_BACK
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=contract.COMPLETE_TRACE[0],
            action=contract.COMPLETE_TRACE[1],
            result_id=trace.id,
            status=AckStatus.ROLLED_BACK,
            rollback_reason=req.reason,
        )
        audit_entry(
            session,
            key=f"{req.run_id}/rollback/trace",
            tenant_id=req.tenant_id,
            event_type="ROLLBACK",
            entity_type="trace",
            entity_id=trace.id,
            before_state=before,
            after_state={"run_id": req.run_id, "status": trace.status, "reason": req.reason},
        )
        return Done()

    run_once(sessions, execution, "traces.revert_completion", Done, write,
             tenant_id=req.tenant_id)  # fmt: skip


def insert_step(session: Session, **row: object) -> None:
    """One link of the chain, in the caller's transaction (the step's: services.steps)."""
    insert_row(session, TraceStep, **row)
