"""The runs domain: the run row, its phase transitions, degradation and finalization
(runs.open's write: services.run_opening), and the failure of a run whose workflow ended
without finalizing (``fail_stale``, called by the reconciliation).

A phase change commits with the write it precedes wherever there is one (runs.open,
traces.start, policies.evaluate, runs.finalize): one transaction instead of two. The one
writer of ``runs`` and ``run_phase_transitions``.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from db.models import Run, RunPhaseTransition
from domain import contract
from domain.enums import ObservabilityStatus, Phase, RunStatus
from domain.ids import derive_id
from domain.messages import (
    DegradedRequest,
    Done,
    FinalizeRequest,
    FinalizeResult,
    TransitionRequest,
)
from domain.phases import check_transition
from observability import metrics
from services.events import emit
from services.ledger import (
    Execution,
    ack,
    audit_entry,
    execute_core,
    insert_row,
    insert_rows,
    run_once,
    utcnow,
)


def transition_row(
    run_id: str,
    seq: int,
    from_phase: Phase | None,
    to_phase: Phase,
    status: RunStatus,
    at: datetime,
    reason: str | None = None,
) -> dict:
    """The row of one phase change (runs.open inserts its first two with the run)."""
    return {
        "id": derive_id(run_id, "transition", seq),
        "run_id": run_id,
        "seq": seq,
        "from_phase": from_phase,
        "to_phase": to_phase,
        "status": status,
        "reason": reason,
        "at": at,
    }


def emit_transition_events(session: Session, req: TransitionRequest, tenant_id: str) -> None:
    for topic, payload in req.events:
        emit(
            session,
            key=f"{req.run_id}/transition/{req.seq}",
            topic=topic,
            tenant_id=tenant_id,
            run_id=req.run_id,
            payload=payload,
        )


def insert_run(session: Session, run: dict[str, Any], transitions: list[dict]) -> None:
    """A new run as runs.open leaves it, with its first transitions (services.run_opening),
    in the caller's transaction: inserted at once (Core), nothing reads them back."""
    insert_row(session, Run, **run)
    insert_rows(session, RunPhaseTransition, transitions)


def mark_degraded(
    sessions: sessionmaker[Session], execution: Execution, req: DegradedRequest
) -> None:
    """Observability guard, DEGRADED mode: the run goes on without a trace, and says so
    (``trace.degraded``, which the audit handlers turn into a TRACE_DEGRADED alert)."""

    def write(session: Session) -> Done:
        run = session.get_one(Run, req.run_id)
        run.observability_status = ObservabilityStatus.DEGRADED
        run.observability_error = req.error
        run.updated_at = utcnow()
        emit(session, key=f"{req.run_id}/degraded", topic="trace.degraded",
             tenant_id=req.tenant_id, run_id=req.run_id,
             payload={"error": req.error, "severity": "MEDIUM"})  # fmt: skip
        return Done()

    run_once(sessions, execution, "runs.mark_degraded", Done, write, tenant_id=req.tenant_id)


def transition(
    sessions: sessionmaker[Session], execution: Execution, req: TransitionRequest
) -> None:
    """Persist one phase change (run row + transition row), once per sequence number."""

    def write(session: Session) -> Done:
        commit_transition(session, req)
        return Done()

    run_once(sessions, execution, f"runs.transition:{req.seq}", Done, write)


def finalize(
    sessions: sessionmaker[Session], execution: Execution, req: FinalizeRequest
) -> FinalizeResult:
    """Terminal transition, finalize_run ack and the run's outbox events, in one commit."""

    def write(session: Session) -> FinalizeResult:
        if req.enter is not None:
            commit_transition(session, req.enter)
        ended = {
            "finalized_at": utcnow(),
            "failure_reason": req.reason if req.to_phase == Phase.FAILED else None,
        }
        if _apply_transition(session, req.run_id, req, req.reason, **ended) is None:
            execute_core(session, _update_run(req.run_id, ended), {})
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=contract.FINALIZE_RUN[0],
            action=contract.FINALIZE_RUN[1],
            result_id=req.status,
        )
        for topic, payload in req.events:
            emit(
                session,
                key=f"{req.run_id}/finalize",
                topic=topic,
                tenant_id=req.tenant_id,
                run_id=req.run_id,
                payload=payload,
            )
        audit_entry(
            session,
            key=f"{req.run_id}/finalized",
            tenant_id=req.tenant_id,
            event_type="RUN_FINALIZED",
            entity_type="run",
            entity_id=req.run_id,
            after_state={
                "run_id": req.run_id,
                "phase": req.to_phase,
                "status": req.status,
                "reason": req.reason,
            },
        )
        finished.append(
            session.execute(
                select(RunPhaseTransition.to_phase, RunPhaseTransition.at)
                .where(RunPhaseTransition.run_id == req.run_id)
                .order_by(RunPhaseTransition.seq)
            ).all()
        )
        return FinalizeResult(phase=req.to_phase, status=req.status, reason=req.reason)

    finished: list = []  # the phase timeline, when this call did the write
    committed = run_once(
        sessions, execution, "runs.finalize", FinalizeResult, write, tenant_id=req.tenant_id
    )
    if finished:
        metrics.record_run_finished(req.tenant_id, req.to_phase, req.status, finished[0])
    return committed


def fail_stale(session: Session, run_id: str, cause: str) -> str | None:
    """A run whose workflow Temporal reports closed (or gone) without finalizing moves to
    FAILED with ``cause`` as its reason, in the caller's transaction: a new transition row
    after its last one, the run row's phase, status, reason and time (nothing else), and a
    ``run.failed`` event. Only while the row is still open — one that finalized meanwhile,
    or was failed by an earlier reconciliation, is left as it is (None is returned).
    Returns the run's tenant when it moved."""
    row = session.execute(
        select(_RUNS.c.phase, _RUNS.c.tenant_id).where(_RUNS.c.id == run_id).with_for_update()
    ).first()
    if row is None or row.phase in (Phase.COMPLETED, Phase.FAILED):
        return None
    check_transition(Phase(row.phase), Phase.FAILED, RunStatus.FAILED)
    now = utcnow()
    moved = execute_core(
        session,
        _update_run(
            run_id,
            {
                "phase": Phase.FAILED,
                "status": RunStatus.FAILED,
                "failure_reason": cause,
                "updated_at": now,
            },
        ).where(_RUNS.c.phase == row.phase),  # (still as read: another writer did not move it)
        {},
    )
    if moved.rowcount != 1:
        return None
    last = session.scalar(
        select(func.max(_TRANSITIONS.c.seq)).where(_TRANSITIONS.c.run_id == run_id)
    )
    seq = (last or 0) + 1
    insert_row(
        session,
        RunPhaseTransition,
        **transition_row(run_id, seq, Phase(row.phase), Phase.FAILED, RunStatus.FAILED, now, cause),
    )
    emit(
        session,
        key=f"{run_id}/stale",
        topic="run.failed",
        tenant_id=row.tenant_id,
        run_id=run_id,
        # "stale": its STALE_RUN finding's alert tells people; the event tells any handler.
        payload={"status": RunStatus.FAILED, "reason": cause, "stale": True},
    )
    return row.tenant_id


def commit_transition(session: Session, req: TransitionRequest) -> None:
    """Persist one phase change (run row, transition row, its events) in the caller's
    transaction: alone in runs.transition, or with the write it precedes."""
    tenant_id = _apply_transition(session, req.run_id, req, None)
    if tenant_id is not None:  # (None: logged already, with its events)
        emit_transition_events(session, req, tenant_id)


def set_status(session: Session, run_id: str, status: RunStatus) -> None:
    """A paused or resumed run's status (services.control), in the caller's transaction."""
    run = session.get_one(Run, run_id)
    run.status = status
    run.updated_at = utcnow()


# Built once: every run changes phase four to six times.
_RUNS = Run.__table__
_TRANSITIONS = RunPhaseTransition.__table__
_TRANSITION_LOGGED = select(_TRANSITIONS.c.id).where(_TRANSITIONS.c.id == bindparam("id"))


def _update_run(run_id: str, values: dict[str, Any]):  # noqa: ANN202 - a Core UPDATE
    return update(_RUNS).where(_RUNS.c.id == run_id).values(values)


def _apply_transition(
    session: Session,
    run_id: str,
    req: TransitionRequest | FinalizeRequest,
    reason: str | None,
    **run_values: Any,
) -> str | None:
    """Move the run to ``req.to_phase`` (with ``run_values``) and log it; returns the run's
    tenant. A change already logged is kept as is, and None returned: it committed with an
    earlier write whose completion the workflow did not see."""
    now = utcnow()
    logged = {"id": derive_id(run_id, "transition", req.seq)}
    if execute_core(session, _TRANSITION_LOGGED, logged).first() is not None:
        return None  # (a logged transition's run exists: the foreign key says so)
    values = {"phase": req.to_phase, "status": req.status, "updated_at": now, **run_values}
    if req.steps_done is not None:
        values["steps_done"] = req.steps_done
        # An agent's model and tool calls are steps declared as the run goes (one amendment
        # a turn): the row counts the steps done when they outnumber the planned ones.
        more = _RUNS.c.steps_total < req.steps_done
        values["steps_total"] = case((more, req.steps_done), else_=_RUNS.c.steps_total)
    if req.cost is not None:
        values["cost"] = req.cost
    moved = _update_run(run_id, values).returning(_RUNS.c.tenant_id)
    tenant_id = execute_core(session, moved, {}).scalar_one_or_none()
    if tenant_id is None:
        raise NoResultFound(f"run {run_id!r} does not exist")
    insert_row(
        session,
        RunPhaseTransition,
        **transition_row(
            run_id, req.seq, req.from_phase, req.to_phase, req.status, now, reason or req.reason
        ),
    )
    return tenant_id
