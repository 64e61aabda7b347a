"""The reactor watchdog: a reactor that died or stalled is restarted, and someone hears of it.

The worker runs each reactor group under a ``Watchdog``. Once per heartbeat interval it
looks at its reactor, which is *down* when

- its task ended — it crashed, or something cancelled it — while the worker runs on, or
- it showed no sign of life (a poll that went through, a delivery done) for
  ``miss_threshold`` heartbeat intervals in a row: a handler that hangs, a database call
  that never returns, a database that does not answer (its heartbeats are missed too).

Then the watchdog abandons it (its task cancelled; a thread stuck inside a handler cannot
be killed — its delivery's lease runs out and the new reactor retries it, so nothing is
lost and nothing is delivered twice), starts a new reactor of the same group, and reports
the outage: one system incident (REACTOR_DOWN, tenant ``SYSTEM_TENANT``) and one
REACTOR_DOWN alert in one transaction — the alert through the fatigue controls and, as
every alert sent, to the system tenant's sinks. A report the database refuses (it is
down) is kept and written at the next look that it accepts.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from domain.alert_fatigue import AlertType, FatigueSettings
from domain.enums import IncidentCategory, Severity
from domain.ids import SYSTEM_TENANT
from events.reactor import Reactor
from observability import metrics
from runtime.settings import Settings
from services.alerts import AlertSpec, raise_alert
from services.incidents import open_system_incident
from services.ledger import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Down:
    """One reactor the watchdog found down."""

    group: str
    reactor_id: str
    cause: str  # "ended" or "silent"
    detail: str


@dataclass
class Watchdog:
    """Keeps one reactor of ``group`` running: ``start`` builds a fresh one."""

    group: str
    start: Callable[[], Reactor]
    sessions: sessionmaker[Session]
    fatigue: FatigueSettings
    interval: float  # the reactors' heartbeat interval, seconds
    miss_threshold: int = 3
    reactor: Reactor | None = None
    restarts: int = 0
    unreported: list[Down] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run the group's reactor until ``stop`` is set, restarting it when it is down."""
        self._launch(stop)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                break
            down = self.diagnose()
            if down is not None:
                log.error("event reactor %s (group %s) is down: %s; restarting it",
                          down.reactor_id, self.group, down.detail)  # fmt: skip
                self._abandon()
                self._launch(stop)
                self.restarts += 1
                metrics.record_reactor_restart(self.group, down.cause)
                self.unreported.append(down)
            if self.unreported:
                await asyncio.to_thread(self.report)
        if self._task is not None:  # the reactor ends its poll and stops
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def diagnose(self) -> Down | None:
        """Why the current reactor is down, or None while it is alive."""
        assert self.reactor is not None and self._task is not None
        rid = self.reactor.reactor_id
        if self._task.done():
            if self._task.cancelled():
                return Down(self.group, rid, "ended", "its task was cancelled")
            error = self._task.exception()
            what = f"{type(error).__name__}: {error}" if error else "it returned"
            return Down(self.group, rid, "ended", f"its task ended ({what})")
        silent = self.reactor.silent_for()
        if silent >= self.miss_threshold * self.interval:
            return Down(self.group, rid, "silent",
                        f"no sign of life for {silent:.1f} s ({self.miss_threshold} heartbeat "
                        f"intervals of {self.interval:g} s missed)")  # fmt: skip
        return None

    def report(self) -> None:
        """Write the incidents and alerts of the outages not yet reported, oldest first."""
        while self.unreported:
            down = self.unreported[0]
            try:
                with self.sessions.begin() as session:
                    report_down(session, self.fatigue, down)
            except Exception as exc:  # the database is down too: try again at the next look
                log.warning("reporting reactor %s down failed (%s); will retry",
                            down.reactor_id, exc)  # fmt: skip
                return
            self.unreported.pop(0)

    def _launch(self, stop: asyncio.Event) -> None:
        self.reactor = self.start()
        self._task = asyncio.create_task(self.reactor.run(stop), name=f"reactor-{self.group}")

    def _abandon(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def report_down(session: Session, fatigue: FatigueSettings, down: Down) -> None:
    """The system incident and the REACTOR_DOWN alert of one reactor found down."""
    now = utcnow()
    title = f"Event reactor of group {down.group} was down and has been restarted"
    details = {"group": down.group, "reactor_id": down.reactor_id, "cause": down.cause,
               "detail": down.detail}  # fmt: skip
    incident_id = open_system_incident(
        session, key=f"reactor-down/{down.reactor_id}", category=IncidentCategory.REACTOR_DOWN,
        severity=Severity.HIGH, title=title, description=down.detail, details=details, now=now,
    )  # fmt: skip
    raise_alert(session, fatigue, AlertSpec(
        tenant_id=SYSTEM_TENANT, alert_type=AlertType.REACTOR_DOWN, severity=Severity.HIGH,
        domain="reactor", run_id=None, dedup_key=f"{AlertType.REACTOR_DOWN}:{down.reactor_id}",
        title=f"{title}: {down.detail}", details={**details, "incident_id": incident_id},
        source_event_id=incident_id,
    ), now)  # fmt: skip


def watched(settings: Settings, sessions: sessionmaker[Session], group: str,
            start: Callable[[], Reactor], fatigue: FatigueSettings) -> Watchdog:  # fmt: skip
    """A watchdog with the worker's heartbeat settings."""
    return Watchdog(group, start, sessions, fatigue,
                    interval=settings.reactor_heartbeat_interval_seconds,
                    miss_threshold=settings.reactor_heartbeat_miss_threshold)  # fmt: skip
