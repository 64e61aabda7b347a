"""The transactional outbox: events go in the same transaction as their cause.

The one writer of ``outbox_events``; the event reactor reads them after commit
(events.reactor, its bookkeeping in services.deliveries).
"""

from typing import Any

from sqlalchemy.orm import Session

from db.models import OutboxEvent
from domain.ids import derive_id
from services.ledger import insert_row, utcnow


def emit(
    session: Session, *, key: str, topic: str, tenant_id: str, run_id: str | None, payload: dict
) -> None:
    body: dict[str, Any] = {"tenant_id": tenant_id, **payload}
    if run_id is not None:
        body["run_id"] = run_id
    insert_row(  # append-only, read by the reactor after commit: inserted at once (Core)
        session,
        OutboxEvent,
        id=derive_id("event", key, topic),
        topic=topic,
        tenant_id=tenant_id,
        run_id=run_id,
        payload=body,
        created_at=utcnow(),
    )
