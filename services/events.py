"""The transactional outbox: events go in the same transaction as their cause.

The one writer of ``outbox_events``; the event reactor reads them after commit
(events.reactor, its bookkeeping in services.deliveries). Expired events go with
``delete_events`` (services.retention chooses them).
"""

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from db.models import OutboxEvent
from domain.ids import derive_id
from services.ledger import UNSYNCED, insert_row, utcnow


def event_id(key: str, topic: str) -> str:
    """The id ``emit`` gives the event of ``key`` and ``topic``."""
    return derive_id("event", key, topic)


def emit(
    session: Session, *, key: str, topic: str, tenant_id: str, run_id: str | None, payload: dict
) -> None:
    body: dict[str, Any] = {"tenant_id": tenant_id, **payload}
    if run_id is not None:
        body["run_id"] = run_id
    insert_row(  # append-only, read by the reactor after commit: inserted at once (Core)
        session,
        OutboxEvent,
        id=event_id(key, topic),
        topic=topic,
        tenant_id=tenant_id,
        run_id=run_id,
        payload=body,
        created_at=utcnow(),
    )


def delete_events(session: Session, event_ids: list[str]) -> int:
    """Delete these events (expired, delivered, behind every reactor: services.retention
    chose them) in the caller's transaction; returns how many went."""
    if not event_ids:
        return 0
    stmt = delete(OutboxEvent).where(OutboxEvent.id.in_(event_ids))
    return session.execute(stmt, execution_options=UNSYNCED).rowcount
