"""The event reactor on both databases: delivery, isolation and retry, late commits, latency."""

import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from db.models import EventDelivery, OutboxEvent
from db.queries.deliveries import delivery_stats, failing_deliveries
from domain.ids import derive_id
from events.reactor import Reactor, ReactorConfig
from events.registry import Event, HandlerContext, Handlers
from services.events import emit
from services.ledger import utcnow

pytestmark = pytest.mark.timeout(60)


def config(**over) -> ReactorConfig:  # noqa: ANN003
    base = {
        "group": f"test-{uuid.uuid4().hex[:8]}",
        "retry_base": 0.05,
        "retry_max": 0.2,
        "sweep_overlap": 5,
        "sweep_interval": 3600,
    }
    return ReactorConfig(**{**base, **over})


def write_event(sessions, topic: str, n: int = 0, **payload) -> str:  # noqa: ANN001, ANN003
    key = f"test/{uuid.uuid4().hex}"
    with sessions.begin() as session:
        emit(session, key=key, topic=topic, tenant_id="t-reactor", run_id=None, payload={
            "n": n, **payload})  # fmt: skip
    return derive_id("event", key, topic)


def drain(reactor: Reactor, polls: int = 50) -> None:
    for _ in range(polls):
        if not reactor.poll_once():
            return


def deliveries(sessions, event_ids: list[str]) -> dict[tuple[str, str], EventDelivery]:  # noqa: ANN001
    with sessions() as session:
        found = session.scalars(select(EventDelivery).where(EventDelivery.event_id.in_(event_ids)))
        return {(d.event_id, d.handler): d for d in found}


def test_each_event_reaches_each_handler_of_its_topic_once(sessions):
    topic, other = f"test.{uuid.uuid4().hex[:8]}", f"test.{uuid.uuid4().hex[:8]}"
    calls: list[tuple[str, str]] = []
    handlers = Handlers()

    @handlers.on(topic, name=f"{topic}.first")
    def first(ctx: HandlerContext, event: Event) -> None:
        calls.append(("first", event.id))

    @handlers.on(topic, other, name=f"{topic}.second")
    def second(ctx: HandlerContext, event: Event) -> None:
        calls.append(("second", event.id))

    events = [write_event(sessions, topic, i) for i in range(3)]
    elsewhere = write_event(sessions, other)
    reactor = Reactor(sessions, handlers, config())
    drain(reactor)
    drain(reactor)  # nothing more: a delivered event is never handed out again
    mine = [c for c in calls if c[1] in events + [elsewhere]]
    assert sorted(mine) == sorted(
        [("first", e) for e in events] + [("second", e) for e in events + [elsewhere]]
    )
    rows = deliveries(sessions, events)
    assert len(rows) == 6
    assert all(d.delivered_at and d.attempts == 1 and d.latency_ms >= 0 for d in rows.values())


def test_a_failing_handler_is_retried_with_backoff_and_isolated(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    attempts: list[int] = []
    steady: list[str] = []
    handlers = Handlers()

    @handlers.on(topic, name=f"{topic}.flaky")
    def flaky(ctx: HandlerContext, event: Event) -> None:
        attempts.append(ctx.attempt)
        ctx.session.add(  # written in the delivery's transaction: rolled back on failure
            OutboxEvent(
                id=str(uuid.uuid4()),
                topic=f"{topic}.side",
                tenant_id="t",
                run_id=None,
                payload={},
                created_at=ctx.now,
            )  # fmt: skip
        )
        if len(attempts) < 3:
            raise RuntimeError(f"boom {len(attempts)}")

    @handlers.on(topic, name=f"{topic}.steady")
    def steady_handler(ctx: HandlerContext, event: Event) -> None:
        steady.append(event.id)

    event_id = write_event(sessions, topic)
    reactor = Reactor(sessions, handlers, config())
    reactor.poll_once()
    row = deliveries(sessions, [event_id])[(event_id, f"{topic}.flaky")]
    assert row.delivered_at is None and row.attempts == 1 and "boom 1" in row.last_error
    assert row.next_attempt_at > utcnow() - timedelta(seconds=1)
    with sessions() as session:
        failing = failing_deliveries(session, 1000)
    assert [f["attempts"] for f in failing if f["handler"] == f"{topic}.flaky"] == [1]
    assert steady == [event_id]  # the other handler did not wait for the failing one
    for _ in range(100):
        reactor.poll_once()
        if len(attempts) >= 3:
            break
        time.sleep(0.03)
    rows = deliveries(sessions, [event_id])
    assert rows[(event_id, f"{topic}.flaky")].delivered_at is not None
    assert rows[(event_id, f"{topic}.flaky")].attempts == 3
    assert rows[(event_id, f"{topic}.flaky")].last_error is None
    assert rows[(event_id, f"{topic}.steady")].attempts == 1
    assert attempts == [1, 2, 3] and steady == [event_id]
    with sessions() as session:
        side = session.scalars(select(OutboxEvent).where(OutboxEvent.topic == f"{topic}.side"))
        assert len(side.all()) == 1  # the failed attempts' writes were rolled back
    assert ReactorConfig(retry_base=1, retry_max=300).backoff(4) == timedelta(seconds=8)
    assert ReactorConfig(retry_base=1, retry_max=300).backoff(20) == timedelta(seconds=300)


def test_an_event_committed_behind_the_cursor_is_found_by_the_sweep(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    seen: list[str] = []
    handlers = Handlers()

    @handlers.on(topic, name=f"{topic}.seen")
    def record(ctx: HandlerContext, event: Event) -> None:
        seen.append(event.id)

    reactor = Reactor(sessions, handlers, config(sweep_interval=0.0, sweep_overlap=60))
    first = write_event(sessions, topic, 1)
    drain(reactor)
    late = write_event(sessions, topic, 2)
    with sessions.begin() as session:  # its writer's clock lagged: created before the cursor
        session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id == late)
            .values(created_at=utcnow() - timedelta(seconds=30))
        )
    drain(reactor)
    assert seen == [first, late]


def test_two_reactors_of_one_group_never_deliver_twice(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    calls: list[str] = []
    handlers = Handlers()

    @handlers.on(topic, name=f"{topic}.once")
    def once(ctx: HandlerContext, event: Event) -> None:
        calls.append(event.id)

    events = [write_event(sessions, topic, i) for i in range(10)]
    cfg = config()
    a, b = Reactor(sessions, handlers, cfg), Reactor(sessions, handlers, cfg)
    for _ in range(10):
        a.poll_once()
        b.poll_once()
    assert sorted(c for c in calls if c in events) == sorted(events)


def test_delivery_latency_and_heartbeats_are_reported(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    handlers = Handlers()
    handlers.on(topic, name=f"{topic}.noop")(lambda ctx, event: None)
    write_event(sessions, topic)
    reactor = Reactor(sessions, handlers, config())
    drain(reactor)
    with sessions() as session:
        stats = delivery_stats(session, utcnow(), timedelta(minutes=5), timedelta(seconds=90))
    assert stats["delivered"] >= 1
    assert stats["latency_ms"]["p50"] is not None and stats["latency_ms"]["max"] >= 0
    mine = [r for r in stats["reactors"] if r["reactor_id"] == reactor.reactor_id]
    assert mine and mine[0]["healthy"] and mine[0]["delivered"] >= 1


def test_a_handler_name_is_registered_once():
    handlers = Handlers()
    handlers.on("run.failed", name="x")(lambda ctx, event: None)
    with pytest.raises(ValueError, match="registered twice"):
        handlers.on("run.completed", name="x")(lambda ctx, event: None)
