"""The event reactor: delivers each outbox event at least once to the handlers of its topic.

No broker: the outbox table is the queue. A small async loop in the worker polls it:

- discover: events after the group's cursor (keyset created_at, id) get one delivery
  row per registered handler; a periodic sweep re-reads a window behind the cursor for
  events whose transaction committed late (or whose writer's clock lags).
- deliver: due delivery rows are leased, then each handler runs in its own transaction
  that also marks its delivery row delivered. A handler that succeeded is never called
  for that event again; one that fails is retried with exponential backoff and does not
  hold back the other handlers. A crash loses nothing: the rows are still undelivered.

The rows (cursor, deliveries, leases, heartbeats) are services.deliveries'. Delivery
latency (event created_at → delivered_at) is stored on each delivery row
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

from sqlalchemy.orm import Session, sessionmaker

from db.models import OutboxEvent
from events.registry import Event, HandlerContext, Handlers
from observability import metrics
from runtime.settings import Settings
from services import deliveries
from services.ledger import utcnow

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

    # ----- discovery and delivery (the rows: services.deliveries) -----------------------

    def discover(self) -> int:
        return deliveries.discover(
            self.sessions,
            self.config.group,
            self.handlers,
            batch_size=self.config.batch_size,
            sweep_every=timedelta(seconds=self.config.sweep_interval),
            sweep_overlap=timedelta(seconds=self.config.sweep_overlap),
        )

    def deliver_due(self) -> int:
        claimed = deliveries.claim(
            self.sessions,
            self.handlers.names,
            self.reactor_id,
            batch_size=self.config.batch_size,
            lease=timedelta(seconds=self.config.lease),
        )
        for event_id, handler in claimed:
            self._deliver(event_id, handler)
        return len(claimed)

    def _deliver(self, event_id: str, handler: str) -> None:
        seen = {"topic": "unknown"}

        def handle(session: Session, row: OutboxEvent, now: datetime, attempt: int) -> None:
            seen["topic"] = row.topic
            event = Event(row.id, row.topic, row.tenant_id, row.run_id, row.payload, row.created_at)
            self.handlers.get(handler)(HandlerContext(session, now, attempt), event)

        try:
            deliveries.deliver(self.sessions, event_id, handler, self.reactor_id, handle)
            self.delivered += 1
            metrics.record_event_delivered(seen["topic"])
        except deliveries.LeaseLost:
            log.info("delivery of %s to %s was taken over", event_id, handler)
        except Exception as exc:  # any handler failure is recorded and retried, never lost
            self.failed += 1
            metrics.record_event_failed(seen["topic"])
            log.warning("handler %s failed on event %s: %s", handler, event_id, exc)
            error = f"{type(exc).__name__}: {exc}"
            deliveries.record_failure(
                self.sessions, event_id, handler, self.reactor_id, error, self.config.backoff
            )

    # ----- health ---------------------------------------------------------------------

    def heartbeat(self, now: datetime) -> None:
        """Record this reactor's sign of life; forget reactors silent for a week."""
        deliveries.heartbeat(
            self.sessions,
            reactor_id=self.reactor_id,
            group=self.config.group,
            started_at=self._started_at,
            now=now,
            delivered=self.delivered,
            failed=self.failed,
            forget_after=HEARTBEAT_TTL,
        )
        self._last_beat = now
