"""The reactor watchdog on both databases: a reactor whose task is killed, or whose handler
hangs, is restarted; the outage is a system incident and a REACTOR_DOWN alert, written
once the database takes them; nothing is lost or delivered twice."""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from db.engine import make_engine
from db.models import Alert, EventDelivery, Incident
from domain.alert_fatigue import FatigueSettings
from domain.ids import SYSTEM_TENANT
from events.reactor import Reactor, ReactorConfig
from events.registry import Event, HandlerContext, Handlers
from events.watchdog import Watchdog
from tests.activities.test_reactor import write_event

pytestmark = pytest.mark.timeout(60)

INTERVAL = 0.2  # the reactors' heartbeat interval in these tests (seconds)


def watchdog(sessions, handlers: Handlers, **config) -> Watchdog:  # noqa: ANN001, ANN003
    group = f"test-watchdog-{uuid.uuid4().hex[:8]}"
    cfg = ReactorConfig(group=group, poll_interval=0.05, heartbeat_interval=INTERVAL,
                        sweep_overlap=5, sweep_interval=3600, retry_base=0.05, retry_max=0.2,
                        **config)  # fmt: skip
    return Watchdog(group, lambda: Reactor(sessions, handlers, cfg), sessions,
                    FatigueSettings(), interval=INTERVAL, miss_threshold=3)  # fmt: skip


async def until(done: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not there in time"
        await asyncio.sleep(0.02)


def reported(sessions, reactor_id: str) -> tuple[list[Incident], list[Alert]]:  # noqa: ANN001
    with sessions() as session:
        found = session.scalars(select(Incident).where(Incident.tenant_id == SYSTEM_TENANT))
        incidents = [i for i in found if i.details.get("reactor_id") == reactor_id]
        alerts = session.scalars(select(Alert).where(Alert.tenant_id == SYSTEM_TENANT))
        return incidents, [a for a in alerts if a.details.get("reactor_id") == reactor_id]


async def test_a_killed_reactor_is_restarted_and_reported(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    handled: list[str] = []
    handlers = Handlers()

    @handlers.on(topic, name=f"{topic}.record")
    def record(ctx: HandlerContext, event: Event) -> None:
        handled.append(event.id)

    dog, stop = watchdog(sessions, handlers), asyncio.Event()
    running = asyncio.create_task(dog.run(stop))
    try:
        first = write_event(sessions, topic)
        await until(lambda: first in handled)
        killed = dog.reactor
        dog._task.cancel()  # the reactor's task killed under the worker
        await until(lambda: dog.restarts == 1 and not dog.unreported)
        assert dog.reactor is not killed
        second = write_event(sessions, topic)
        await until(lambda: second in handled)  # the new reactor delivers
    finally:
        stop.set()
        await running
    assert handled == [first, second]  # each once
    incidents, alerts = reported(sessions, killed.reactor_id)
    assert [(i.category, i.severity, i.status, i.details["cause"]) for i in incidents] == [
        ("REACTOR_DOWN", "HIGH", "OPEN", "ended")]  # fmt: skip
    assert "cancelled" in incidents[0].description
    assert [(a.alert_type, a.severity, a.domain) for a in alerts] == [
        ("REACTOR_DOWN", "HIGH", "reactor")]  # fmt: skip
    assert alerts[0].details["incident_id"] == incidents[0].id
    assert dog.reactor.reactor_id != killed.reactor_id


class HangsOnce:
    """An effect (a send to a receiver) whose first attempt hangs: the reactor is stuck
    outside any transaction, as behind a receiver that never answers."""

    def __init__(self) -> None:
        self.release, self.entered = threading.Event(), threading.Event()
        self.sent: list[str] = []

    def perform(self, event: Event, attempt: int) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(30)
            raise RuntimeError("released at the end of the test")
        self.sent.append(event.id)

    def succeeded(self, ctx: HandlerContext, event: Event, result: object) -> None:
        pass

    def failed(self, ctx: HandlerContext, event: Event, error: Exception) -> None:
        pass


async def test_a_reactor_stuck_in_a_send_is_restarted_and_the_delivery_retried(sessions):
    topic = f"test.{uuid.uuid4().hex[:8]}"
    effect = HangsOnce()
    handlers = Handlers()
    handlers.effect(topic, name=f"{topic}.hangs-once", effect=effect)
    # A short lease: the stuck delivery falls to the new reactor soon after the restart.
    dog, stop = watchdog(sessions, handlers, lease=1.0), asyncio.Event()
    running = asyncio.create_task(dog.run(stop))
    try:
        event_id = write_event(sessions, topic)
        await until(effect.entered.is_set)
        stuck = dog.reactor
        await until(lambda: dog.restarts >= 1 and not dog.unreported)
        await until(lambda: effect.sent == [event_id])  # retried by the new reactor, once
    finally:
        effect.release.set()
        stop.set()
        await running
    incidents, alerts = reported(sessions, stuck.reactor_id)
    assert [(i.category, i.details["cause"]) for i in incidents] == [("REACTOR_DOWN", "silent")]
    assert "3 heartbeat intervals" in incidents[0].description
    assert len(alerts) == 1
    with sessions() as session:
        found = select(EventDelivery).where(EventDelivery.event_id == event_id)
        (delivery,) = session.scalars(found)
    assert delivery.delivered_at is not None


async def test_a_report_the_database_refuses_is_written_once_it_answers(sessions):
    handlers = Handlers()
    dog, stop = watchdog(sessions, handlers), asyncio.Event()
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    try:
        dog.sessions = sessionmaker(unreachable)  # its reports go to a database that is down
        running = asyncio.create_task(dog.run(stop))
        await until(lambda: dog.reactor is not None)
        killed = dog.reactor
        dog._task.cancel()
        await until(lambda: dog.restarts == 1)
        await asyncio.sleep(3 * INTERVAL)  # a few looks: each attempt refused
        assert len(dog.unreported) == 1
        assert reported(sessions, killed.reactor_id) == ([], [])
        dog.sessions = sessions  # the database answers again
        await until(lambda: not dog.unreported)
    finally:
        stop.set()
        await running
        unreachable.dispose()
    incidents, alerts = reported(sessions, killed.reactor_id)
    assert len(incidents) == 1 and len(alerts) == 1
