"""The event reactor's bookkeeping: a cursor per group, a delivery row per (event, handler),
leases, and each reactor's heartbeat (the loop itself: events.reactor).

- ``discover``: events after the group's cursor (keyset created_at, id) get one delivery
  row per handler of their topic; a periodic sweep re-reads a window behind the cursor for
  events whose transaction committed late (or whose writer's clock lags).
- ``claim`` leases due delivery rows; ``deliver`` runs one handler in the transaction that
  marks its row delivered (with its latency); ``record_failure`` schedules the retry.
- A handler whose work is I/O outside the database (an alert sink's) reads its event with
  ``leased`` and does the I/O while the lease is held, outside any transaction; then
  ``deliver`` records the success, or ``record_failure`` (with ``also``) the failure.

The one writer of ``event_cursors``, ``event_deliveries`` and ``reactor_heartbeats``
(the delivery rows of expired events go with them: ``delete_deliveries_of``).
"""

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import EventCursor, EventDelivery, OutboxEvent, ReactorHeartbeat
from services.ledger import UNSYNCED, utcnow


class Routing(Protocol):
    """Which handlers receive which topics (events.registry.Handlers)."""

    @property
    def names(self) -> list[str]: ...

    @property
    def topics(self) -> set[str] | None: ...

    def names_for(self, topic: str) -> list[str]: ...


class LeaseLost(Exception):
    """Another reactor took the delivery over; this one leaves it alone."""


Handle = Callable[[Session, OutboxEvent, datetime, int], None]
"""Runs one handler on an event: (its delivery's transaction, the event, now, attempt)."""


def discover(sessions: sessionmaker[Session], group: str, routing: Routing, *,
             batch_size: int, sweep_every: timedelta, sweep_overlap: timedelta,
             received: Counter[tuple[str, str]] | None = None) -> int:  # fmt: skip
    """Add the delivery rows of new events (and, every ``sweep_every``, of late ones);
    returns how many were added, and counts them per (topic, handler) in ``received``."""
    now = utcnow()
    created = 0
    with sessions.begin() as session:
        cursor = session.get(EventCursor, group)
        if cursor is None:
            cursor = EventCursor(group_name=group, position_at=now - sweep_overlap,
                                 position_id="", updated_at=now)  # fmt: skip
            session.add(cursor)
        position = (cursor.position_at, cursor.position_id)
        rows = session.execute(
            _events(routing)
            .where(OutboxEvent.created_at >= position[0])
            .where(tuple_(OutboxEvent.created_at, OutboxEvent.id) > position)
            .limit(batch_size)
        ).all()
        created += _add_deliveries(session, routing, rows, now, received)
        if rows:
            cursor.position_at, cursor.position_id = rows[-1].created_at, rows[-1].id
            cursor.updated_at = now
        if cursor.swept_at is None or now - cursor.swept_at >= sweep_every:
            created += _sweep(session, routing, cursor.position_at - sweep_overlap,
                              cursor.position_at, now, received)  # fmt: skip
            cursor.swept_at = now
    return created


def _events(routing: Routing):  # noqa: ANN202 - a Select
    stmt = select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.created_at)
    topics = routing.topics
    if topics is not None:
        stmt = stmt.where(OutboxEvent.topic.in_(sorted(topics)))
    return stmt.order_by(OutboxEvent.created_at, OutboxEvent.id)


def _sweep(session: Session, routing: Routing, since: datetime, until: datetime,
           now: datetime, received: Counter[tuple[str, str]] | None) -> int:  # fmt: skip
    """Events in the window behind the cursor that have no delivery row of this group."""
    has_delivery = (
        select(EventDelivery.event_id)
        .where(EventDelivery.event_id == OutboxEvent.id)
        .where(EventDelivery.handler.in_(routing.names))
        .exists()
    )
    rows = session.execute(
        _events(routing)
        .where(OutboxEvent.created_at >= since, OutboxEvent.created_at <= until)
        .where(~has_delivery)
    ).all()
    return _add_deliveries(session, routing, rows, now, received)


def _add_deliveries(session: Session, routing: Routing, rows: list[Any], now: datetime,
                    received: Counter[tuple[str, str]] | None = None) -> int:  # fmt: skip
    values = [
        {"event_id": row.id, "handler": name, "topic": row.topic,
         "event_created_at": row.created_at, "created_at": now, "next_attempt_at": now,
         "attempts": 0}
        for row in rows
        for name in routing.names_for(row.topic)
    ]  # fmt: skip
    if values:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(dialect.insert(EventDelivery).values(values).on_conflict_do_nothing())
    if received is not None:
        received.update((v["topic"], v["handler"]) for v in values)
    return len(values)


def claim(sessions: sessionmaker[Session], handlers: list[str], owner: str, *,
          batch_size: int, lease: timedelta) -> list[tuple[str, str]]:  # fmt: skip
    """Lease up to ``batch_size`` due deliveries to ``handlers`` for ``owner``; returns
    the (event id, handler) pairs it took."""
    d = EventDelivery
    now = utcnow()
    free = or_(d.lease_until.is_(None), d.lease_until < now)
    claimed = []
    with sessions.begin() as session:
        due = session.execute(
            select(d.event_id, d.handler)
            .where(d.delivered_at.is_(None), d.next_attempt_at <= now, free)
            .where(d.handler.in_(handlers))
            .order_by(d.next_attempt_at, d.event_created_at, d.event_id, d.handler)
            .limit(batch_size)
        ).all()
        for event_id, handler in due:
            taken = session.execute(
                update(d)
                .where(d.event_id == event_id, d.handler == handler)
                .where(d.delivered_at.is_(None), free)
                .values(lease_owner=owner, lease_until=now + lease)
            )
            if taken.rowcount:
                claimed.append((event_id, handler))
    return claimed


def deliver(sessions: sessionmaker[Session], event_id: str, handler: str, owner: str,
            handle: Handle) -> None:  # fmt: skip
    """Mark the delivery delivered and run ``handle`` in the same transaction: a handler
    that fails leaves it undelivered. LeaseLost when the lease is no longer ``owner``'s."""
    d = EventDelivery
    mine = (d.event_id == event_id, d.handler == handler, d.lease_owner == owner)
    with sessions.begin() as session:
        row = session.get_one(OutboxEvent, event_id)
        attempts = session.scalar(select(d.attempts).where(*mine)) or 0
        now = utcnow()
        marked = session.execute(
            update(d)
            .where(*mine, d.delivered_at.is_(None))
            .values(delivered_at=now, attempts=d.attempts + 1,
                    latency_ms=int((now - row.created_at).total_seconds() * 1000),
                    last_error=None, lease_owner=None, lease_until=None)
        )  # fmt: skip
        if not marked.rowcount:
            raise LeaseLost
        handle(session, row, now, attempts + 1)


def leased(sessions: sessionmaker[Session], event_id: str, handler: str,
           owner: str) -> tuple[OutboxEvent, int] | None:  # fmt: skip
    """The event of a delivery ``owner`` holds the lease of, and its attempts so far (None
    when the lease is no longer ``owner``'s); a read, without the write lock."""
    d = EventDelivery
    with reading(sessions) as session:
        attempts = session.scalar(
            select(d.attempts).where(d.event_id == event_id, d.handler == handler,
                                     d.lease_owner == owner, d.delivered_at.is_(None))
        )  # fmt: skip
        if attempts is None:
            return None
        return session.get_one(OutboxEvent, event_id), attempts


Failed = Callable[[Session, datetime, int], None]
"""Runs in the transaction that records a failed attempt: (it, now, the attempt's number)."""


def record_failure(sessions: sessionmaker[Session], event_id: str, handler: str, owner: str,
                   error: str, backoff: Callable[[int], timedelta],
                   also: Failed | None = None) -> None:  # fmt: skip
    """Count the failed attempt and schedule the next one after ``backoff(attempts)``;
    ``also`` records the handler's side of the failure in the same transaction."""
    with sessions.begin() as session:
        row = session.get(EventDelivery, (event_id, handler))
        if row is None or row.delivered_at is not None or row.lease_owner != owner:
            return
        row.attempts += 1
        row.last_error = error[:2000]
        now = utcnow()
        row.next_attempt_at = now + backoff(row.attempts)
        row.lease_owner = row.lease_until = None
        if also is not None:
            also(session, now, row.attempts)


def heartbeat(sessions: sessionmaker[Session], *, reactor_id: str, group: str,
              started_at: datetime, now: datetime, delivered: int, failed: int,
              forget_after: timedelta) -> None:  # fmt: skip
    """Record a reactor's sign of life; forget reactors silent for ``forget_after``."""
    with sessions.begin() as session:
        session.execute(
            delete(ReactorHeartbeat).where(ReactorHeartbeat.beat_at < now - forget_after)
        )
        session.merge(
            ReactorHeartbeat(reactor_id=reactor_id, group_name=group, started_at=started_at,
                             beat_at=now, delivered=delivered, failed=failed)
        )  # fmt: skip


def delete_deliveries_of(session: Session, event_ids: list[str]) -> int:
    """Delete the delivery rows of these events (being purged, every row delivered:
    services.retention) in the caller's transaction; returns how many went."""
    if not event_ids:
        return 0
    d = EventDelivery
    stmt = delete(d).where(d.event_id.in_(event_ids))
    return session.execute(stmt, execution_options=UNSYNCED).rowcount
