"""Alert sinks: every alert sent reaches each matching sink of its tenant, at least once.

Two handlers of the reactor group ``alert-sinks`` (its own loop in the worker, so a slow
receiver never delays the audit handlers):

- ``sinks.route`` on ``alert.raised`` (services.alerts writes it with each alert that
  passed the fatigue controls; a suppressed alert has none): one ``alert.sink_delivery``
  outbox event per matching sink (domain.sinks.receives), in the delivery's transaction —
  so one delivery row per (alert, sink), with the reactor's retries, backoff and leases.
- ``sinks.send``, an effect on ``alert.sink_delivery``: the send itself (events.senders)
  outside any transaction, under the delivery's lease; each attempt is recorded with the
  sink's health (services.sinks). A failed attempt is retried with backoff; the
  ``unhealthy_after``-th failure in a row marks the sink unhealthy and raises a
  SINK_UNHEALTHY alert of its tenant (through the fatigue controls), which goes to the
  tenant's other sinks — never to the failing one. A removed sink's deliveries are dropped.
  Every attempt counts in ``governed_runs.notifications.deliveries`` (sink kind, outcome).
"""

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from domain.alert_fatigue import AlertType, FatigueSettings
from domain.enums import Severity
from domain.sink_messages import AlertMessage
from domain.sinks import ALERT_RAISED, SINK_DELIVERY, SINK_DOMAIN, HealthChange, receives
from events.handlers import default_fatigue
from events.reactor import Reactor, ReactorConfig
from events.registry import Event, HandlerContext, Handlers
from events.senders import Sender, SendFailed, Sent
from observability import metrics
from runtime.settings import Settings
from services import events, sinks
from services.alerts import AlertSpec, raise_alert
from services.sinks import Attempt, StoredSink

SINK_GROUP = "alert-sinks"
ROUTE = "sinks.route"
SEND = "sinks.send"


def route(ctx: HandlerContext, event: Event) -> None:
    """One sink delivery event per sink of the tenant that receives this alert."""
    alert = AlertMessage.from_dict(event.payload["alert"])
    for sink in sinks.routes_of(ctx.session, alert.tenant_id):
        if receives(sink, alert.alert_type, alert.severity, alert.about_sink):
            events.emit(ctx.session, key=f"alert/{alert.id}/sink/{sink.sink_id}",
                        topic=SINK_DELIVERY, tenant_id=alert.tenant_id, run_id=alert.run_id,
                        payload={"alert": alert.to_dict(), "sink_id": sink.sink_id})  # fmt: skip


@dataclass(frozen=True)
class _Done:
    sink: StoredSink | None  # None: the sink was removed, nothing was sent
    sent: Sent | None


class AttemptFailed(Exception):
    """An attempt to a sink that did not deliver: recorded, and the delivery retried."""

    def __init__(self, sink: StoredSink, sent: Sent) -> None:
        super().__init__(sent.error or sent.outcome)
        self.sink = sink
        self.sent = sent


@dataclass(frozen=True)
class SendToSink:
    """The effect of ``sinks.send``: one attempt to send one alert to one sink."""

    sessions: sessionmaker[Session]
    sender: Sender
    fatigue: FatigueSettings
    unhealthy_after: int

    def perform(self, event: Event, attempt: int) -> _Done:
        sink = sinks.stored_sink(self.sessions, event.tenant_id, sink_id=event.payload["sink_id"])
        if sink is None:
            return _Done(None, None)
        alert = AlertMessage.from_dict(event.payload["alert"])
        try:
            sent = self.sender.send(sink, alert, event.id, attempt)
        except SendFailed as failed:
            metrics.record_notification(sink.kind, failed.sent.outcome)
            raise AttemptFailed(sink, failed.sent) from None
        metrics.record_notification(sink.kind, sent.outcome)
        return _Done(sink, sent)

    def succeeded(self, ctx: HandlerContext, event: Event, result: _Done) -> None:
        if result.sink is not None and result.sent is not None:
            self._record(ctx, event, result.sink, result.sent)

    def failed(self, ctx: HandlerContext, event: Event, error: Exception) -> None:
        if isinstance(error, AttemptFailed):
            self._record(ctx, event, error.sink, error.sent)

    def _record(self, ctx: HandlerContext, event: Event, sink: StoredSink, sent: Sent) -> None:
        alert = AlertMessage.from_dict(event.payload["alert"])
        attempt = Attempt(
            sink, alert.id, alert.alert_type, event.id, ctx.attempt, sent.outcome,
            sent.status_code, sent.error, sent.duration_ms, sent.started_at,
        )  # fmt: skip
        change = sinks.record_attempt(ctx.session, attempt, self.unhealthy_after)
        if change.became_unhealthy:
            raise_alert(ctx.session, self.fatigue, unhealthy_alert(attempt, change, event),
                        ctx.now)  # fmt: skip


def unhealthy_alert(attempt: Attempt, change: HealthChange, event: Event) -> AlertSpec:
    """The tenant's alert about one of its sinks (routing keeps it off that sink)."""
    sink = attempt.sink
    failures = change.after.consecutive_failures
    details: dict[str, Any] = {
        "sink_id": sink.id, "sink_name": sink.name, "sink_kind": sink.kind,
        "consecutive_failures": failures, "last_outcome": attempt.outcome,
        "last_status_code": attempt.status_code, "last_error": attempt.error,
    }  # fmt: skip
    return AlertSpec(
        tenant_id=sink.tenant_id,
        alert_type=AlertType.SINK_UNHEALTHY,
        severity=Severity.HIGH,
        domain=SINK_DOMAIN,
        run_id=None,
        dedup_key=f"{AlertType.SINK_UNHEALTHY}:{sink.id}",
        title=f"alert sink {sink.name} ({sink.kind}) failed {failures} times in a row: "
        f"{attempt.error or attempt.outcome}",
        details=details,
        source_event_id=event.id,
    )


def sink_handlers(sessions: sessionmaker[Session], sender: Sender, fatigue: FatigueSettings,
                  unhealthy_after: int) -> Handlers:  # fmt: skip
    handlers = Handlers()
    handlers.on(ALERT_RAISED, name=ROUTE)(route)
    handlers.effect(SINK_DELIVERY, name=SEND,
                    effect=SendToSink(sessions, sender, fatigue, unhealthy_after))  # fmt: skip
    return handlers


def sink_config(settings: Settings) -> ReactorConfig:
    """The group's reactor settings: a poll's deliveries (at most ``concurrency``) are sent
    side by side, and a lease outlasts a slow SMTP exchange (several timeouts long)."""
    base = ReactorConfig.from_settings(settings, SINK_GROUP)
    concurrency = settings.alert_sink_concurrency
    return replace(base, concurrency=concurrency, batch_size=min(base.batch_size, concurrency),
                   lease=max(base.lease, 10 * settings.alert_sink_timeout_seconds))  # fmt: skip


def sink_reactor(settings: Settings, sessions: sessionmaker[Session], sender: Sender) -> Reactor:
    """The worker's reactor of alert sinks, configured from settings."""
    handlers = sink_handlers(sessions, sender, default_fatigue(settings),
                             settings.alert_sink_unhealthy_after)  # fmt: skip
    return Reactor(sessions, handlers, sink_config(settings))
