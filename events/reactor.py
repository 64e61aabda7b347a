"""The event reactor: delivers each outbox event at least once to the handlers of its topic.

No broker: the outbox table is the queue. A small async loop in the worker polls it:

- discover: events after the group's cursor (keyset created_at, id) get one delivery
  row per registered handler; a periodic sweep re-reads a window behind the cursor for
  events whose transaction committed late (or whose writer's clock lags).
- deliver: due delivery rows are leased, then each handler runs in its own transaction
  that also marks its delivery row delivered. A handler that succeeded is never called
  for that event again; one that fails is retried with exponential backoff and does not
  hold back the other handlers. A crash loses nothing: the rows are still undelivered.

An effect (``Handlers.effect``: an alert sink's send) does its I/O outside any transaction
while the reactor holds the delivery's lease, then records the outcome in the transaction
that marks the delivery delivered or schedules its retry; with ``concurrency`` > 1 the
deliveries of one poll run side by side, so one slow receiver does not hold up the others.

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
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.models import OutboxEvent
from events.registry import Effect, Event, HandlerContext, Handlers
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
    concurrency: int = 1  # deliveries of one poll handled side by side

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
    # Its last sign of life (a poll that went through, a delivery done): events.watchdog
    # restarts a reactor silent for too long.
    alive_at: float = field(default_factory=time.monotonic)
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; database work runs off the event loop."""
        log.info("event reactor %s (group %s) started", self.reactor_id, self.config.group)
        while not stop.is_set():
            try:
                busy = await asyncio.to_thread(self.poll_once)
                self.alive_at = time.monotonic()
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
        received: Counter[tuple[str, str]] = Counter()
        found = deliveries.discover(
            self.sessions,
            self.config.group,
            self.handlers,
            batch_size=self.config.batch_size,
            sweep_every=timedelta(seconds=self.config.sweep_interval),
            sweep_overlap=timedelta(seconds=self.config.sweep_overlap),
            received=received,
        )
        metrics.record_events_received(received)
        return found

    def deliver_due(self) -> int:
        claimed = deliveries.claim(
            self.sessions,
            self.handlers.names,
            self.reactor_id,
            batch_size=self.config.batch_size,
            lease=timedelta(seconds=self.config.lease),
        )
        workers = min(self.config.concurrency, len(claimed))
        if workers <= 1:
            for event_id, handler in claimed:
                self._deliver(event_id, handler)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="reactor-delivery") as pool:
                list(pool.map(lambda pair: self._deliver(*pair), claimed))
        return len(claimed)

    def _deliver(self, event_id: str, handler: str) -> None:
        seen: dict = {"topic": "unknown", "event": None}
        effect = self.handlers.effect_of(handler)

        def handle(session: Session, row: OutboxEvent, now: datetime, attempt: int) -> None:
            seen["topic"] = row.topic
            self.handlers.get(handler)(HandlerContext(session, now, attempt), _event(row))

        began = time.monotonic()
        try:
            if effect is None:
                deliveries.deliver(self.sessions, event_id, handler, self.reactor_id, handle)
            else:
                self._perform(event_id, handler, effect, seen)
            self._count(delivered=1)
            metrics.record_event_delivered(seen["topic"], handler, time.monotonic() - began)
        except deliveries.LeaseLost:
            log.info("delivery of %s to %s was taken over", event_id, handler)
        except Exception as exc:  # any handler failure is recorded and retried, never lost
            self._count(failed=1)
            metrics.record_event_failed(seen["topic"], handler, time.monotonic() - began)
            log.warning("handler %s failed on event %s: %s", handler, event_id, exc)
            self._record_failure(event_id, handler, exc, effect, seen["event"])
        finally:
            self.alive_at = time.monotonic()  # a long poll that delivers is alive

    def _perform(self, event_id: str, handler: str, effect: Effect, seen: dict) -> None:
        """The effect's I/O under the lease, outside any transaction; then its success in
        the transaction that marks the delivery delivered."""
        leased = deliveries.leased(self.sessions, event_id, handler, self.reactor_id)
        if leased is None:
            raise deliveries.LeaseLost
        row, attempts = leased
        event = seen["event"] = _event(row)
        seen["topic"] = row.topic
        result = effect.perform(event, attempts + 1)

        def succeeded(session: Session, _: OutboxEvent, now: datetime, attempt: int) -> None:
            effect.succeeded(HandlerContext(session, now, attempt), event, result)

        deliveries.deliver(self.sessions, event_id, handler, self.reactor_id, succeeded)

    def _record_failure(self, event_id: str, handler: str, exc: Exception,
                        effect: Effect | None, event: Event | None) -> None:  # fmt: skip
        also = None
        if effect is not None and event is not None:

            def also(session: Session, now: datetime, attempt: int) -> None:
                effect.failed(HandlerContext(session, now, attempt), event, exc)

        try:
            deliveries.record_failure(self.sessions, event_id, handler, self.reactor_id,
                                      f"{type(exc).__name__}: {exc}", self.config.backoff,
                                      also)  # fmt: skip
        except Exception:  # the lease runs out and the delivery is retried: nothing is lost
            log.exception("recording the failure of %s on event %s failed", handler, event_id)

    def _count(self, delivered: int = 0, failed: int = 0) -> None:
        with self._count_lock:
            self.delivered += delivered
            self.failed += failed

    # ----- health ---------------------------------------------------------------------

    def silent_for(self) -> float:
        """Seconds since this reactor's last sign of life."""
        return time.monotonic() - self.alive_at

    def heartbeat(self, now: datetime) -> None:
        """Record this reactor's sign of life; forget reactors silent for a week. The
        intervals since the last beat that had none (a stalled poll, a database outage)
        are counted as misses."""
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
        missed = 0
        if self._last_beat is not None:
            intervals = (now - self._last_beat).total_seconds() // self.config.heartbeat_interval
            missed = max(int(intervals) - 1, 0)
        metrics.record_heartbeat(self.config.group, missed)
        self._last_beat = now


def _event(row: OutboxEvent) -> Event:
    return Event(row.id, row.topic, row.tenant_id, row.run_id, row.payload, row.created_at)
