"""The event reactor: delivers each outbox event at least once to the handlers of its topic.

No broker: the outbox table is the queue. A small async loop in the worker polls it:

- discover: events after the group's cursor (keyset created_at, id) get one delivery
  row per registered handler; a periodic sweep re-reads a window behind the cursor for
  events whose transaction committed late (or whose writer's clock lags).
- deliver: due delivery rows are leased, then each handler runs in its own transaction
  that also marks its delivery row delivered. A handler that succeeded is never called
  for that event again; one that fails is retried with exponential backoff and does not
  hold back the other handlers. A crash loses nothing: the rows are still undelivered.

Delivery latency (event created_at → delivered_at) is stored on each delivery row
(db.queries.deliveries.delivery_stats reads it). Handlers register with a decorator::

    handlers = Handlers()

    @handlers.on("run.failed")
    def page_someone(ctx: HandlerContext, event: Event) -> None: ...
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from activities.ledger import utcnow
from db.models import EventCursor, EventDelivery, OutboxEvent, ReactorHeartbeat
from observability import metrics
from runtime.event_registry import Event, HandlerContext, Handlers
from runtime.settings import Settings

log = logging.getLogger(__name__)
HEARTBEAT_TTL = timedelta(days=7)


@dataclass(frozen=True)
class ReactorConfig:
    group: str = "default"
    poll_interval: float = 0.5
    batch_size: int = 100
    retry_base: float = 1.0
    retry_max: float = 300.0
    lease: float = 60.0
    sweep_interval: float = 30.0
    sweep_overlap: float = 300.0
    heartbeat_interval: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, group: str) -> "ReactorConfig":
        return cls(
            group=group,
            poll_interval=settings.reactor_poll_interval_seconds,
            batch_size=settings.reactor_batch_size,
            retry_base=settings.reactor_retry_base_seconds,
            retry_max=settings.reactor_retry_max_seconds,
            lease=settings.reactor_lease_seconds,
            sweep_interval=settings.reactor_sweep_interval_seconds,
            sweep_overlap=settings.reactor_sweep_overlap_seconds,
            heartbeat_interval=settings.reactor_heartbeat_interval_seconds,
        )

    def backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.retry_base * 2 ** max(attempts - 1, 0), self.retry_max))


class LeaseLost(Exception):
    """Another reactor took the delivery over; this one leaves it alone."""


@dataclass
class Reactor:
    """Polls the outbox for one group of handlers (every worker may run one per group)."""

    sessions: sessionmaker[Session]
    handlers: Handlers
    config: ReactorConfig = field(default_factory=ReactorConfig)
    reactor_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    delivered: int = 0
    failed: int = 0
    _started_at: datetime = field(default_factory=utcnow)
    _last_beat: datetime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; database work runs off the event loop."""
        log.info("event reactor %s (group %s) started", self.reactor_id, self.config.group)
        while not stop.is_set():
            try:
                busy = await asyncio.to_thread(self.poll_once)
            except Exception:  # the reactor must outlive any one failure (database down, bug)
                log.exception("event reactor poll failed; retrying")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_interval)

    def poll_once(self) -> bool:
        """Discover new events, deliver what is due; True if there was work."""
        found = self.discover()
        done = self.deliver_due()
        now = utcnow()
        interval = timedelta(seconds=self.config.heartbeat_interval)
        if self._last_beat is None or now - self._last_beat >= interval:
            self.heartbeat(now)
        return found + done > 0

    # ----- discovery ------------------------------------------------------------------

    def discover(self) -> int:
        now = utcnow()
        created = 0
        with self.sessions.begin() as session:
            cursor = session.get(EventCursor, self.config.group)
            if cursor is None:
                start = now - timedelta(seconds=self.config.sweep_overlap)
                cursor = EventCursor(
                    group_name=self.config.group, position_at=start, position_id="", updated_at=now
                )
                session.add(cursor)
            position = (cursor.position_at, cursor.position_id)
            rows = session.execute(
                self._events()
                .where(OutboxEvent.created_at >= position[0])
                .where(tuple_(OutboxEvent.created_at, OutboxEvent.id) > position)
                .limit(self.config.batch_size)
            ).all()
            created += self._add_deliveries(session, rows, now)
            if rows:
                cursor.position_at, cursor.position_id = rows[-1].created_at, rows[-1].id
                cursor.updated_at = now
            sweep_every = timedelta(seconds=self.config.sweep_interval)
            if cursor.swept_at is None or now - cursor.swept_at >= sweep_every:
                created += self._sweep(session, cursor.position_at, now)
                cursor.swept_at = now
        return created

    def _events(self):  # noqa: ANN202 - a Select
        stmt = select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.created_at)
        topics = self.handlers.topics
        if topics is not None:
            stmt = stmt.where(OutboxEvent.topic.in_(sorted(topics)))
        return stmt.order_by(OutboxEvent.created_at, OutboxEvent.id)

    def _sweep(self, session: Session, position_at: datetime, now: datetime) -> int:
        """Events in the window behind the cursor that have no delivery row of this group."""
        since = position_at - timedelta(seconds=self.config.sweep_overlap)
        has_delivery = (
            select(EventDelivery.event_id)
            .where(EventDelivery.event_id == OutboxEvent.id)
            .where(EventDelivery.handler.in_(self.handlers.names))
            .exists()
        )
        rows = session.execute(
            self._events()
            .where(OutboxEvent.created_at >= since, OutboxEvent.created_at <= position_at)
            .where(~has_delivery)
        ).all()
        return self._add_deliveries(session, rows, now)

    def _add_deliveries(self, session: Session, rows: list[Any], now: datetime) -> int:
        values = [
            {
                "event_id": row.id,
                "handler": name,
                "topic": row.topic,
                "event_created_at": row.created_at,
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            }
            for row in rows
            for name in self.handlers.names_for(row.topic)
        ]
        if values:
            dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
            session.execute(dialect.insert(EventDelivery).values(values).on_conflict_do_nothing())
        return len(values)

    # ----- delivery -------------------------------------------------------------------

    def deliver_due(self) -> int:
        claimed = self._claim(utcnow())
        for event_id, handler in claimed:
            self._deliver(event_id, handler)
        return len(claimed)

    def _claim(self, now: datetime) -> list[tuple[str, str]]:
        d = EventDelivery
        free = or_(d.lease_until.is_(None), d.lease_until < now)
        claimed = []
        with self.sessions.begin() as session:
            due = session.execute(
                select(d.event_id, d.handler)
                .where(d.delivered_at.is_(None), d.next_attempt_at <= now, free)
                .where(d.handler.in_(self.handlers.names))
                .order_by(d.next_attempt_at, d.event_created_at, d.event_id, d.handler)
                .limit(self.config.batch_size)
            ).all()
            lease_until = now + timedelta(seconds=self.config.lease)
            for event_id, handler in due:
                taken = session.execute(
                    update(d)
                    .where(d.event_id == event_id, d.handler == handler)
                    .where(d.delivered_at.is_(None), free)
                    .values(lease_owner=self.reactor_id, lease_until=lease_until)
                )
                if taken.rowcount:
                    claimed.append((event_id, handler))
        return claimed

    def _deliver(self, event_id: str, handler: str) -> None:
        d = EventDelivery
        mine = (d.event_id == event_id, d.handler == handler, d.lease_owner == self.reactor_id)
        topic = "unknown"
        try:
            with self.sessions.begin() as session:
                row = session.get_one(OutboxEvent, event_id)
                topic = row.topic
                attempts = session.scalar(select(d.attempts).where(*mine)) or 0
                now = utcnow()
                latency = int((now - row.created_at).total_seconds() * 1000)
                marked = session.execute(
                    update(d)
                    .where(*mine, d.delivered_at.is_(None))
                    .values(
                        delivered_at=now,
                        attempts=d.attempts + 1,
                        latency_ms=latency,
                        last_error=None,
                        lease_owner=None,
                        lease_until=None,
                    )
                )
                if not marked.rowcount:
                    raise LeaseLost
                event = Event(
                    row.id, row.topic, row.tenant_id, row.run_id, row.payload, row.created_at
                )
                self.handlers.get(handler)(HandlerContext(session, now, attempts + 1), event)
            self.delivered += 1
            metrics.record_event_delivered(topic)
        except LeaseLost:
            log.info("delivery of %s to %s was taken over", event_id, handler)
        except Exception as exc:  # any handler failure is recorded and retried, never lost
            self.failed += 1
            metrics.record_event_failed(topic)
            log.warning("handler %s failed on event %s: %s", handler, event_id, exc)
            self._record_failure(event_id, handler, f"{type(exc).__name__}: {exc}")

    def _record_failure(self, event_id: str, handler: str, error: str) -> None:
        with self.sessions.begin() as session:
            row = session.get(EventDelivery, (event_id, handler))
            if row is None or row.delivered_at is not None or row.lease_owner != self.reactor_id:
                return
            row.attempts += 1
            row.last_error = error[:2000]
            row.next_attempt_at = utcnow() + self.config.backoff(row.attempts)
            row.lease_owner = row.lease_until = None

    # ----- health ---------------------------------------------------------------------

    def heartbeat(self, now: datetime) -> None:
        """Record this reactor's sign of life; forget reactors silent for a week."""
        with self.sessions.begin() as session:
            session.execute(
                delete(ReactorHeartbeat).where(ReactorHeartbeat.beat_at < now - HEARTBEAT_TTL)
            )
            session.merge(
                ReactorHeartbeat(
                    reactor_id=self.reactor_id,
                    group_name=self.config.group,
                    started_at=self._started_at,
                    beat_at=now,
                    delivered=self.delivered,
                    failed=self.failed,
                )
            )
        self._last_beat = now
