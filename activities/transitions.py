"""The rows of one phase change that do not depend on how it is committed: its
transition row and its outbox events (runs.open inserts the first two transitions with the
run; every later change goes through activities.runs.commit_transition)."""

from datetime import datetime

from sqlalchemy.orm import Session

from activities.events import emit
from domain.enums import Phase, RunStatus
from domain.ids import derive_id
from domain.messages import TransitionRequest


def transition_row(
    run_id: str,
    seq: int,
    from_phase: Phase | None,
    to_phase: Phase,
    status: RunStatus,
    at: datetime,
    reason: str | None = None,
) -> dict:
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
