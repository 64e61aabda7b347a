"""Alert sinks: a tenant's webhook, Slack and e-mail destinations (save, list, remove), the
reads their delivery needs, and the record of every attempt with the sink's health.

A sink's secrets (its URL, signing secret, SMTP password: domain.sinks.SinkSecrets) are
encrypted with the deployment's key (``box``: activities.secret_store.SecretBox) before
they are written, and are never returned, printed or audited. Each change is an
audit-ledger entry (SINK_CREATED, SINK_UPDATED, SINK_DELETED; SINK_UNHEALTHY and
SINK_RECOVERED when its health changes) keyed by the tenant, the sink's name, the change
and its time. A refusal names the field and writes nothing. The one writer of
``alert_sinks`` and ``alert_sink_attempts``.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import AlertSink, AlertSinkAttempt, Tenant
from db.queries import sinks as sink_queries
from db.queries.sinks import SinkView, sink_view
from domain.ids import derive_id
from domain.sinks import (
    SINK_REQUEST,
    EmailSink,
    Health,
    HealthChange,
    Outcome,
    SinkKind,
    SinkRoute,
    SlackSink,
    WebhookSink,
    after_attempt,
    split_request,
)
from domain.validation_errors import describe_errors
from services.errors import AdminError
from services.ledger import audit_entry, utcnow

MAX_ERROR_CHARS = 2000
Request = WebhookSink | SlackSink | EmailSink


class Encrypts(Protocol):
    def encrypt(self, value: str) -> str: ...


def sink_id_of(tenant_id: str, name: str) -> str:
    return derive_id(tenant_id, "alert-sink", name)


def _without_kind(error: Mapping[str, Any]) -> dict[str, Any]:
    """A validation error as the operator reads it: ``url: ...`` (pydantic puts the sink's
    kind first), and an unknown kind named as the field ``kind``."""
    loc, msg = tuple(error["loc"]), error["msg"]
    if loc and loc[0] in tuple(SinkKind):
        loc = loc[1:]
    if error["type"] == "union_tag_invalid":
        loc, msg = ("kind",), f"unknown kind {error['ctx']['tag']!r} (webhook, slack or email)"
    elif error["type"] == "union_tag_not_found":
        loc, msg = ("kind",), "required (webhook, slack or email)"
    return {"loc": loc, "msg": msg}


def parse_request(raw: Request | Mapping[str, Any]) -> Request:
    """The sink a request describes; AdminError names every field it refuses."""
    if isinstance(raw, WebhookSink | EmailSink):
        return raw
    try:
        return SINK_REQUEST.validate_python(raw)
    except ValidationError as exc:
        errors = [_without_kind(e) for e in exc.errors(include_url=False)]
        raise AdminError(describe_errors(errors, default="sink")) from None


def _known_tenant(session: Session, tenant_id: str) -> None:
    if session.get(Tenant, tenant_id) is None:
        raise AdminError(f"unknown tenant {tenant_id!r}")


def _audited(view: SinkView) -> dict[str, Any]:
    """What the audit ledger keeps of a sink: its configuration, never a secret."""
    return view.model_dump(mode="json", include={
        "id", "name", "kind", "min_severity", "alert_types", "settings"})  # fmt: skip


def _audit(session: Session, sink: AlertSink, event: str, at: datetime, *, actor: str,
           authority: str | None, before: dict | None = None,
           source: str = "admin") -> None:  # fmt: skip
    audit_entry(
        session,
        key=f"{sink.tenant_id}/alert-sink/{sink.name}/{event}/{at.isoformat()}",
        tenant_id=sink.tenant_id,
        event_type=event,
        entity_type="alert_sink",
        entity_id=sink.id,
        before_state=before,
        after_state={"tenant_id": sink.tenant_id, **_audited(sink_view(sink))},
        actor_id=actor,
        actor_authority=authority,
        source=source,
    )


def save_sink(sessions: sessionmaker[Session], box: Encrypts, tenant_id: str,
              raw: Request | Mapping[str, Any], *, actor: str = "operator",
              authority: str = "TENANT_ADMIN") -> tuple[SinkView, bool]:  # fmt: skip
    """Create a sink, or replace the tenant's sink of that name (its health starts afresh);
    returns its view and whether it is new."""
    request = parse_request(raw)
    shown, secrets = split_request(request)
    ciphertext = box.encrypt(json.dumps(secrets.to_dict()))
    types = None if request.alert_types is None else sorted(set(request.alert_types))
    with sessions.begin() as session:
        _known_tenant(session, tenant_id)
        now = utcnow()
        sink = session.get(AlertSink, sink_id_of(tenant_id, request.name))
        created = sink is None
        before = None if created else _audited(sink_view(sink))
        if created:
            sink = AlertSink(id=sink_id_of(tenant_id, request.name), tenant_id=tenant_id,
                             name=request.name, created_at=now)  # fmt: skip
            session.add(sink)
        sink.kind, sink.min_severity, sink.alert_types = request.kind, request.min_severity, types
        sink.settings, sink.ciphertext, sink.updated_at = shown, ciphertext, now
        sink.healthy, sink.consecutive_failures, sink.last_error = True, 0, None
        session.flush()
        _audit(session, sink, "SINK_CREATED" if created else "SINK_UPDATED", now,
               actor=actor, authority=authority, before=before)  # fmt: skip
        return sink_view(sink), created


def list_sinks(sessions: sessionmaker[Session], tenant_id: str) -> list[SinkView]:
    """A tenant's sinks by name, with their health (never a secret)."""
    with reading(sessions) as session:
        _known_tenant(session, tenant_id)
        return sink_queries.list_sinks(session, tenant_id)


def delete_sink(sessions: sessionmaker[Session], tenant_id: str, name: str, *,
                actor: str = "operator", authority: str = "TENANT_ADMIN") -> None:  # fmt: skip
    """Remove a tenant's sink; its deliveries still pending are dropped, its attempts kept.
    Another tenant's sink is unknown, like one that does not exist."""
    with sessions.begin() as session:
        sink = session.get(AlertSink, sink_id_of(tenant_id, name))
        if sink is None:
            raise AdminError(f"unknown sink {name!r} for tenant {tenant_id!r}")
        _audit(session, sink, "SINK_DELETED", utcnow(), actor=actor, authority=authority,
               before=_audited(sink_view(sink)))  # fmt: skip
        session.delete(sink)


# ----- what delivery reads ------------------------------------------------------------------


def routes_of(session: Session, tenant_id: str) -> list[SinkRoute]:
    """The tenant's sinks as routing sees them (in the caller's transaction), by name."""
    rows = session.execute(
        select(AlertSink.id, AlertSink.name, AlertSink.min_severity, AlertSink.alert_types)
        .where(AlertSink.tenant_id == tenant_id)
        .order_by(AlertSink.name)
    )
    return [SinkRoute(i, n, s, None if t is None else tuple(t)) for i, n, s, t in rows]


@dataclass(frozen=True)
class StoredSink:
    """A sink as its delivery needs it: the secrets still encrypted."""

    id: str
    tenant_id: str
    name: str
    kind: str
    settings: dict[str, Any]
    ciphertext: str


def stored_sink(sessions: sessionmaker[Session], tenant_id: str, name: str | None = None, *,
                sink_id: str | None = None) -> StoredSink | None:  # fmt: skip
    """The tenant's sink of that name (or id), or None (one SELECT, no lock)."""
    with reading(sessions) as session:
        row = session.get(AlertSink, sink_id or sink_id_of(tenant_id, name or ""))
        if row is None or row.tenant_id != tenant_id:
            return None
        return StoredSink(row.id, row.tenant_id, row.name, row.kind, dict(row.settings),
                          row.ciphertext)  # fmt: skip


# ----- attempts and health ------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One attempt to deliver an alert (or a test message) to a sink, and how it ended."""

    sink: StoredSink
    alert_id: str
    alert_type: str
    delivery_id: str
    attempt: int
    outcome: Outcome
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime

    @property
    def id(self) -> str:
        return derive_id("alert-sink-attempt", self.delivery_id, self.attempt)


def _insert_attempt(session: Session, a: Attempt) -> None:
    session.add(AlertSinkAttempt(
        id=a.id, tenant_id=a.sink.tenant_id, sink_id=a.sink.id, sink_name=a.sink.name,
        sink_kind=a.sink.kind, alert_id=a.alert_id, alert_type=a.alert_type,
        delivery_id=a.delivery_id, attempt=a.attempt, outcome=a.outcome,
        status_code=a.status_code, error=(a.error or None) and a.error[:MAX_ERROR_CHARS],
        duration_ms=a.duration_ms, attempted_at=a.attempted_at,
    ))  # fmt: skip


def record_attempt(session: Session, attempt: Attempt, unhealthy_after: int) -> HealthChange:
    """Record a delivery attempt (in the caller's transaction: the delivery's) and the
    sink's health after it; a sink removed meanwhile keeps the record and no health."""
    _insert_attempt(session, attempt)
    sink = session.get(AlertSink, attempt.sink.id, with_for_update=True)
    delivered = attempt.outcome == Outcome.DELIVERED
    if sink is None:
        return HealthChange(Health(delivered, 0))
    change = after_attempt(Health(sink.healthy, sink.consecutive_failures), delivered,
                           unhealthy_after)  # fmt: skip
    sink.healthy = change.after.healthy
    sink.consecutive_failures = change.after.consecutive_failures
    sink.last_attempt_at = attempt.attempted_at
    if delivered:
        sink.last_success_at = attempt.attempted_at
    else:
        sink.last_error = (attempt.error or attempt.outcome)[:MAX_ERROR_CHARS]
    if change.became_unhealthy or change.recovered:
        event = "SINK_UNHEALTHY" if change.became_unhealthy else "SINK_RECOVERED"
        session.flush()
        _audit(session, sink, event, attempt.attempted_at, actor="system:governed-runs",
               authority="SYSTEM_AUTO", source="alert_sinks")  # fmt: skip
    return change


def record_test(sessions: sessionmaker[Session], attempt: Attempt) -> None:
    """Record the attempt of ``sinks test`` (its own transaction; the sink's health is
    left as it is: only alerts count)."""
    with sessions.begin() as session:
        _insert_attempt(session, attempt)
