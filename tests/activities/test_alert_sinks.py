"""Alert sinks on both databases, against real receivers: a local webhook server that
verifies each signature, a local SMTP server (aiosmtpd) with STARTTLS and a login.

Alerts are raised through the fatigue controls (services.alerts) and delivered by the
alert-sinks reactor (events.notifications) with short retries; every attempt is on record."""

import io
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import pytest
from cryptography.fernet import Fernet

from activities.secret_store import SecretBox
from db.models import AlertSink, AuditLedgerEntry, EventDelivery
from db.queries.alerts import list_alerts
from db.queries.sinks import AttemptView, list_attempts
from domain.alert_fatigue import AlertType, FatigueSettings
from domain.enums import Severity
from domain.ids import derive_id
from domain.sink_messages import verify
from domain.sinks import SINK_DELIVERY, SinkRoute, receives
from events.handlers import audit_handlers
from events.notifications import sink_handlers
from events.reactor import Reactor, ReactorConfig
from events.senders import Sender, tenant_outbound
from runtime.worker_factory import egress
from services import sinks
from services.alerts import AlertSpec, raise_alert, save_tenant_settings
from services.errors import AdminError
from services.ledger import utcnow
from tests.helpers import count, new_tenant, rows
from tests.security_servers import allow_egress, self_signed_tls
from tests.sink_servers import receiver, smtp_server

pytestmark = pytest.mark.timeout(90)

SECRET = "whsec-0123456789abcdef"  # the sink's signing secret (22 bytes)


@pytest.fixture
def box(tmp_path) -> SecretBox:
    return SecretBox(Fernet.generate_key().decode(), tmp_path / "unused.key")


@pytest.fixture
def tenant(sessions):
    """A tenant whose sinks are removed afterwards (a later test's reactor then drops
    whatever this test left undelivered)."""
    tenant_id = new_tenant(sessions)
    yield tenant_id
    for sink in sinks.list_sinks(sessions, tenant_id):
        sinks.delete_sink(sessions, tenant_id, sink.name)


def sender_for(settings, sessions, box, *, timeout: float = 5.0, tls=None) -> Sender:  # noqa: ANN001
    outbound = egress(settings) if tls is None else replace(egress(settings), tls=tls)
    return Sender(box, tenant_outbound(outbound, sessions), timeout)


def reactor_for(sessions, sender: Sender, *, unhealthy_after: int = 5,  # noqa: ANN001
                concurrency: int = 4) -> Reactor:  # fmt: skip
    config = ReactorConfig(group=f"test-sinks-{uuid.uuid4().hex[:8]}", retry_base=0.05,
                           retry_max=0.2, sweep_overlap=5, sweep_interval=3600, lease=60,
                           concurrency=concurrency, batch_size=2 * concurrency)  # fmt: skip
    handlers = sink_handlers(sessions, sender, FatigueSettings(), unhealthy_after)
    return Reactor(sessions, handlers, config)


def add_webhook(sessions, box, tenant_id: str, name: str, url: str, **over) -> None:  # noqa: ANN001, ANN003
    request = {"kind": "webhook", "name": name, "url": url, "secret": SECRET, **over}
    sinks.save_sink(sessions, box, tenant_id, request)


def raise_one(sessions, tenant_id: str, alert_type: AlertType = AlertType.STALE_RUN,  # noqa: ANN001
              severity: Severity = Severity.HIGH, dedup_key: str | None = None,
              fatigue: FatigueSettings | None = None) -> str:  # fmt: skip
    """An alert through the fatigue controls; its id (whether it was sent or suppressed)."""
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    spec = AlertSpec(tenant_id=tenant_id, alert_type=alert_type, severity=severity,
                     domain="orchestrator", run_id=run_id,
                     dedup_key=dedup_key or f"{alert_type}:{run_id}",
                     title=f"Run {run_id} never finalized (workflow TERMINATED)",
                     details={"cause": "TERMINATED"},
                     source_event_id=str(uuid.uuid4()))  # fmt: skip
    with sessions.begin() as session:
        raise_alert(session, fatigue or FatigueSettings(), spec, utcnow())
    return derive_id("alert", spec.source_event_id, spec.alert_type, spec.dedup_key)


def attempts(sessions, tenant_id: str, sink: str | None = None) -> list[AttemptView]:  # noqa: ANN001
    """The tenant's delivery attempts, oldest first."""
    with sessions() as session:
        return list(reversed(list_attempts(session, tenant_id, sink, 500)))


def outcomes(sessions, tenant_id: str, sink: str | None = None) -> list[tuple]:  # noqa: ANN001
    return [(a.attempt, a.outcome, a.status_code) for a in attempts(sessions, tenant_id, sink)]


def run_until(reactor: Reactor, done: Callable[[], bool], timeout: float = 30) -> None:
    """Poll the reactor until ``done``; between idle polls, wait out the retry backoff."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the reactor did not get there in time"
        if not reactor.poll_once():
            time.sleep(0.02)  # the next retry is due within retry_max (0.2 s)


def drain(reactor: Reactor, polls: int = 30) -> None:
    for _ in range(polls):
        if not reactor.poll_once():
            return


def delivered(sessions, tenant_id: str, n: int = 1) -> Callable[[], bool]:  # noqa: ANN001
    return lambda: sum(a.outcome == "DELIVERED" for a in attempts(sessions, tenant_id)) >= n


# ----- webhook and slack -----------------------------------------------------------------------


def test_a_webhook_gets_the_signed_alert_and_a_500_is_retried_until_delivered(
    settings, sessions, box, tenant
):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "hook", f"{rx.url}/hook?token=abc")
        rx.answer("/hook?token=abc", 500, 500)
        alert_id = raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(reactor, delivered(sessions, tenant))
        drain(reactor)  # delivered: never sent again
        got = rx.at("/hook?token=abc")
    assert [r.answered for r in got] == [500, 500, 200]
    assert all(r.verified for r in got)  # HMAC over "<t>.<raw body>", t fresh: checked there
    assert all(verify(r.headers["x-governed-runs-signature"], SECRET, r.body, int(time.time()))
               for r in got)  # fmt: skip
    assert not verify(got[0].headers["x-governed-runs-signature"], SECRET, got[0].body + b" ",
                      int(time.time()))  # fmt: skip
    assert not verify(got[0].headers["x-governed-runs-signature"], SECRET, got[0].body,
                      int(time.time()) + 3600)  # a replay an hour later  # fmt: skip
    body = got[-1].json
    assert (body["id"], body["tenant_id"], body["alert_type"], body["severity"]) == (
        alert_id, tenant, "STALE_RUN", "HIGH")  # fmt: skip
    assert "never finalized" in body["title"] and body["details"] == {"cause": "TERMINATED"}
    assert {r.headers["x-governed-runs-delivery"] for r in got} == {
        derive_id("event", f"alert/{alert_id}/sink/{sinks.sink_id_of(tenant, 'hook')}",
                  SINK_DELIVERY)}  # one delivery, the same id on every attempt  # fmt: skip
    assert [r.headers["x-governed-runs-attempt"] for r in got] == ["1", "2", "3"]
    assert [r.headers["content-type"] for r in got] == ["application/json"] * 3
    tried = attempts(sessions, tenant)
    assert [(a.attempt, a.outcome, a.status_code) for a in tried] == [
        (1, "FAILED", 500), (2, "FAILED", 500), (3, "DELIVERED", 200)]  # fmt: skip
    assert tried[0].error == f"{rx.url} answered 500"  # the origin: never the path or query
    assert {(a.sink_name, a.sink_kind, a.alert_id, a.alert_type) for a in tried} == {
        ("hook", "webhook", alert_id, "STALE_RUN")}  # fmt: skip
    [sink] = sinks.list_sinks(sessions, tenant)
    assert sink.healthy and sink.consecutive_failures == 0 and sink.last_success_at is not None


def test_a_webhook_that_times_out_is_retried_and_the_alert_is_not_lost(
    settings, sessions, box, tenant
):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "slow", f"{rx.url}/slow")
        rx.hold("/slow")  # the first request gets no answer until the test ends
        raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box, timeout=1.0))
        run_until(reactor, delivered(sessions, tenant))
    tried = attempts(sessions, tenant)
    assert [(a.attempt, a.outcome, a.status_code) for a in tried] == [
        (1, "FAILED", None), (2, "DELIVERED", 200)]  # fmt: skip
    assert tried[0].error.endswith("did not answer within 1s"), tried[0].error


def test_slack_gets_text_and_blocks_signed_like_a_webhook(settings, sessions, box, tenant):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "chat", f"{rx.url}/services/T0/B0/XYZ", kind="slack")
        raise_one(sessions, tenant, AlertType.DRIFT, Severity.MEDIUM)
        run_until(reactor_for(sessions, sender_for(settings, sessions, box)),
                  delivered(sessions, tenant))  # fmt: skip
        [got] = rx.at("/services/T0/B0/XYZ")
    assert got.verified
    assert set(got.json) == {"text", "blocks"}
    assert got.json["text"].startswith("[MEDIUM] DRIFT: Run ")
    assert [b["type"] for b in got.json["blocks"]] == ["section", "context"]
    assert f"tenant `{tenant}`" in got.json["blocks"][1]["elements"][0]["text"]
    [sink] = sinks.list_sinks(sessions, tenant)
    assert sink.settings == {"origin": f"{rx.url}"}  # the URL's path (Slack's token) is not shown


# ----- email ----------------------------------------------------------------------------------


def test_email_goes_over_starttls_with_the_login_and_a_refusal_is_retried(
    settings, sessions, box, tenant, tmp_path
):
    server_tls, client_tls = self_signed_tls(tmp_path, "localhost")
    with smtp_server(server_tls, {"alerts": "smtp-password-1"}) as (inbox, port):
        allow_egress(sessions, tenant, f"*://localhost:{port}")
        inbox.refuse("oncall@example.com", 1)
        sinks.save_sink(sessions, box, tenant, {
            "kind": "email", "name": "oncall", "host": "localhost", "port": port,
            "from": "alerts@example.com", "to": ["oncall@example.com"],
            "starttls": True, "username": "alerts", "password": "smtp-password-1"})  # fmt: skip
        alert_id = raise_one(sessions, tenant, severity=Severity.CRITICAL)
        sender = sender_for(settings, sessions, box, tls=client_tls)
        run_until(reactor_for(sessions, sender), delivered(sessions, tenant))
        [mail] = inbox.mails
    assert (mail.mail_from, mail.rcpt_tos, mail.login, mail.tls) == (
        "alerts@example.com", ["oncall@example.com"], "alerts", True)  # fmt: skip
    assert mail.message["Subject"].startswith("[governed-runs] CRITICAL STALE_RUN: Run ")
    assert mail.message["X-Governed-Runs-Alert"] == alert_id
    assert "never finalized" in mail.message.get_content()
    tried = attempts(sessions, tenant)
    assert [(a.attempt, a.outcome, a.status_code) for a in tried] == [
        (1, "FAILED", 550), (2, "DELIVERED", 250)]  # fmt: skip
    assert "550 5.1.1 mailbox unavailable" in tried[0].error
    [shown] = sinks.list_sinks(sessions, tenant)
    assert "password" not in json.dumps(shown.model_dump(mode="json")).replace('"username"', "")


def test_a_wrong_smtp_password_is_a_failed_attempt_with_the_reply(
    settings, sessions, box, tenant, tmp_path
):
    server_tls, client_tls = self_signed_tls(tmp_path, "localhost")
    with smtp_server(server_tls, {"alerts": "right-password"}) as (inbox, port):
        allow_egress(sessions, tenant, f"*://localhost:{port}")
        sinks.save_sink(sessions, box, tenant, {
            "kind": "email", "name": "oncall", "host": "localhost", "port": port,
            "from": "alerts@example.com", "to": ["oncall@example.com"],
            "username": "alerts", "password": "wrong-password"})  # fmt: skip
        raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box, tls=client_tls))
        run_until(reactor, lambda: len(attempts(sessions, tenant)) >= 2)
        assert inbox.mails == []
    first = attempts(sessions, tenant)[0]
    assert (first.outcome, first.status_code) == ("FAILED", 535)
    assert "wrong-password" not in (first.error or "")


# ----- routing, fatigue, health ----------------------------------------------------------------


def test_alerts_go_to_the_sinks_whose_severity_and_types_match(settings, sessions, box, tenant):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "high", f"{rx.url}/high", min_severity="HIGH")
        add_webhook(sessions, box, tenant, "drift", f"{rx.url}/drift", alert_types=["DRIFT"])
        add_webhook(sessions, box, tenant, "critical", f"{rx.url}/critical",
                    min_severity="CRITICAL")  # fmt: skip
        stale = raise_one(sessions, tenant, AlertType.STALE_RUN, Severity.HIGH)
        drift = raise_one(sessions, tenant, AlertType.DRIFT, Severity.MEDIUM)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(reactor, delivered(sessions, tenant, 2))
        drain(reactor)
        seen = {path: [r.json["id"] for r in rx.at(path)] for path in ("/high", "/drift",
                                                                       "/critical")}  # fmt: skip
    assert seen == {"/high": [stale], "/drift": [drift], "/critical": []}
    assert sorted((a.sink_name, a.alert_id) for a in attempts(sessions, tenant)) == sorted(
        [("high", stale), ("drift", drift)])  # fmt: skip


def test_routing_rules():
    route = SinkRoute("s1", "ops", "HIGH", ("DRIFT", "SINK_UNHEALTHY"))
    assert receives(route, "DRIFT", "CRITICAL", None)
    assert not receives(route, "DRIFT", "MEDIUM", None)  # below its minimum severity
    assert not receives(route, "STALE_RUN", "CRITICAL", None)  # not one of its types
    assert receives(route, "SINK_UNHEALTHY", "HIGH", "s2")  # about another sink
    assert not receives(route, "SINK_UNHEALTHY", "HIGH", "s1")  # about itself: never


def test_a_suppressed_alert_is_sent_nowhere(settings, sessions, box, tenant):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "hook", f"{rx.url}/hook")
        first = raise_one(sessions, tenant, dedup_key="STALE_RUN:r1:orchestrator")
        raise_one(sessions, tenant, dedup_key="STALE_RUN:r1:orchestrator")  # a DUPLICATE
        reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(reactor, delivered(sessions, tenant))
        save_tenant_settings(sessions, tenant, alerts_enabled=False)
        raise_one(sessions, tenant)  # DISABLED
        drain(reactor)
        assert [r.json["id"] for r in rx.at("/hook")] == [first]
    assert [a.alert_id for a in attempts(sessions, tenant)] == [first]


def test_a_failing_sink_turns_unhealthy_and_alerts_the_other_sinks_not_itself(
    settings, sessions, box, tenant
):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "broken", f"{rx.url}/broken")
        add_webhook(sessions, box, tenant, "pager", f"{rx.url}/pager")
        rx.answer("/broken", *[500] * 1000)
        original = raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box), unhealthy_after=2)
        run_until(reactor, lambda: len(rx.at("/pager")) == 2 and len(rx.at("/broken")) >= 4)
        drain(reactor)
        at_pager = [r.json for r in rx.at("/pager")]
        at_broken = [r.json for r in rx.at("/broken")]
    assert [a["alert_type"] for a in at_pager] == ["STALE_RUN", "SINK_UNHEALTHY"]
    unhealthy = at_pager[1]
    assert unhealthy["details"]["sink_name"] == "broken"
    assert unhealthy["details"]["consecutive_failures"] == 2
    assert "failed 2 times in a row" in unhealthy["title"]
    assert {a["id"] for a in at_broken} == {original}  # its own alert never went back to it
    with sessions() as session:
        raised = [
            a for a in list_alerts(session, tenant, 50) if a["alert_type"] == "SINK_UNHEALTHY"
        ]
    assert len(raised) == 1  # raised once, when it turned unhealthy
    pager_attempts = attempts(sessions, tenant, "pager")
    assert [(a.attempt, a.outcome) for a in pager_attempts] == [(1, "DELIVERED")] * 2
    health = {s.name: (s.healthy, s.consecutive_failures >= 4) for s in sinks.list_sinks(
        sessions, tenant)}  # fmt: skip
    assert health == {"broken": (False, True), "pager": (True, False)}
    assert count(sessions, AuditLedgerEntry, tenant_id=tenant, event_type="SINK_UNHEALTHY") == 1


def test_a_slow_sink_does_not_hold_up_the_others(settings, sessions, box, tenant):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "a-slow", f"{rx.url}/a-slow")  # routed first
        add_webhook(sessions, box, tenant, "b-fast", f"{rx.url}/b-fast")
        release = rx.hold("/a-slow")
        raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box, timeout=30))
        polling = threading.Thread(
            target=run_until, args=(reactor, delivered(sessions, tenant, 2)), daemon=True
        )
        polling.start()
        with rx.changed:
            fast = rx.changed.wait_for(lambda: rx.at("/b-fast"), timeout=15)
        held = not release.is_set() and rx.at("/a-slow") == []
        release.set()
        polling.join(30)
    assert fast and held  # b-fast was delivered while a-slow's request was still waiting
    assert sorted(outcomes(sessions, tenant)) == [(1, "DELIVERED", 200)] * 2


def test_a_removed_sink_drops_its_pending_deliveries(settings, sessions, box, tenant):
    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "gone", f"{rx.url}/gone")
        rx.answer("/gone", *[500] * 1000)
        alert_id = raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(reactor, lambda: len(attempts(sessions, tenant)) >= 1)
        sink_id = sinks.sink_id_of(tenant, "gone")
        sinks.delete_sink(sessions, tenant, "gone")
        sent = len(rx.at("/gone"))
        delivery = (derive_id("event", f"alert/{alert_id}/sink/{sink_id}", SINK_DELIVERY),
                    "sinks.send")  # fmt: skip

        def dropped() -> bool:
            with sessions() as session:
                return session.get(EventDelivery, delivery).delivered_at is not None

        run_until(reactor, dropped)
        assert len(rx.at("/gone")) == sent  # nothing more was sent
    assert len(attempts(sessions, tenant)) == sent  # its attempts are kept


# ----- egress -----------------------------------------------------------------------------------


def test_egress_refuses_loopback_without_an_entry_and_the_deployment_always(
    settings, sessions, box, tenant
):
    with receiver(SECRET) as rx:
        add_webhook(sessions, box, tenant, "local", f"{rx.url}/local")  # no allow-list entry
        api = f"http://127.0.0.1:{settings.http_port}/alerts"
        add_webhook(sessions, box, tenant, "api", api)
        sinks.save_sink(sessions, box, tenant, {
            "kind": "email", "name": "mail", "host": "127.0.0.1", "port": 2525,
            "from": "a@example.com", "to": ["b@example.com"], "starttls": False})  # fmt: skip
        allow_egress(sessions, tenant, api)  # allow-listed, still the deployment's own port
        raise_one(sessions, tenant)
        reactor = reactor_for(sessions, sender_for(settings, sessions, box))
        run_until(reactor, lambda: {a.sink_name for a in attempts(sessions, tenant)} == {
            "local", "api", "mail"})  # fmt: skip
        assert rx.received == []
    errors = {a.sink_name: (a.outcome, a.error) for a in attempts(sessions, tenant)
              if a.attempt == 1}  # fmt: skip
    assert errors["local"] == ("REFUSED", "egress refused: 127.0.0.1 is in a loopback range "
                               f"(no allow-list entry for tenant {tenant})")  # fmt: skip
    assert errors["api"] == ("REFUSED", f"egress refused: 127.0.0.1:{settings.http_port} is a "
                             "protected endpoint of this deployment")  # fmt: skip
    assert errors["mail"][0] == "REFUSED" and "loopback" in errors["mail"][1]


# ----- configuration ----------------------------------------------------------------------------

BAD_INPUT = [
    ({"kind": "webhook", "url": "ftp://hooks.example.com/x"},
     "url: must be an http or https URL, got scheme 'ftp'"),
    ({"kind": "webhook", "url": "https://hooks.example.com/\nx"},
     "url: whitespace and control characters are not allowed"),
    ({"kind": "webhook", "secret": "fifteen-bytes!!"}, "secret: must be 16 to 1000 bytes, got 15"),
    ({"kind": "webhook", "min_severity": "URGENT"},
     "min_severity: Input should be 'LOW', 'MEDIUM', 'HIGH' or 'CRITICAL'"),
    ({"kind": "webhook", "alert_types": ["NOPE"]}, "alert_types.0: Input should be"),
    ({"kind": "sms"}, "kind: unknown kind 'sms' (webhook, slack or email)"),
    ({"kind": "email", "port": 70000}, "port: Input should be less than or equal to 65535"),
    ({"kind": "email", "port": 0}, "port: Input should be greater than or equal to 1"),
    ({"kind": "email", "to": ["not-an-address"]}, "to.0: not an e-mail address"),
    ({"kind": "email", "username": "u"}, "password: required with a username"),
    ({"kind": "email", "name": "bad name"}, "name: String should match pattern"),
]  # fmt: skip


def _request(over: dict) -> dict:
    base = {"name": "bad", "url": "https://hooks.example.com/x", "secret": SECRET}
    if over.get("kind") == "email":
        base = {"name": "bad", "host": "smtp.example.com", "from": "a@example.com",
                "to": ["b@example.com"]}  # fmt: skip
    return {**base, **over}


@pytest.mark.parametrize(("over", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    sessions, box, tenant, over, message
):
    with pytest.raises(AdminError) as refused:
        sinks.save_sink(sessions, box, tenant, _request(over))
    assert message in str(refused.value)
    assert SECRET not in str(refused.value)
    assert count(sessions, AlertSink, tenant_id=tenant) == 0
    assert count(sessions, AuditLedgerEntry, tenant_id=tenant, entity_type="alert_sink") == 0


def test_a_sink_of_an_unknown_or_another_tenant_is_refused(sessions, box, tenant):
    with pytest.raises(AdminError, match="unknown tenant 'no-such-tenant'"):
        sinks.save_sink(sessions, box, "no-such-tenant", _request({"kind": "webhook"}))
    other = new_tenant(sessions)
    sinks.save_sink(sessions, box, other, _request({"kind": "webhook", "name": "theirs"}))
    with pytest.raises(AdminError, match="unknown sink 'theirs'"):
        sinks.delete_sink(sessions, tenant, "theirs")
    assert sinks.stored_sink(sessions, tenant, "theirs") is None
    assert [s.name for s in sinks.list_sinks(sessions, other)] == ["theirs"]
    sinks.delete_sink(sessions, other, "theirs")


def test_changes_are_audited_with_deterministic_keys_and_never_a_secret(sessions, box, tenant):
    url = "https://hooks.slack.com/services/T000/B000/tok3n"
    view, created = sinks.save_sink(sessions, box, tenant, {
        "kind": "slack", "name": "chat", "url": url, "secret": SECRET})  # fmt: skip
    assert created and view.settings == {"origin": "https://hooks.slack.com:443"}
    again, created = sinks.save_sink(sessions, box, tenant, {
        "kind": "slack", "name": "chat", "url": url, "secret": SECRET, "min_severity": "HIGH",
        "alert_types": ["STALE_RUN", "DRIFT", "DRIFT"]})  # fmt: skip
    assert not created and again.alert_types == ["DRIFT", "STALE_RUN"]
    [row] = rows(sessions, AlertSink, tenant_id=tenant)
    assert SECRET not in row.ciphertext and "tok3n" not in row.ciphertext
    assert json.loads(box.decrypt(row.ciphertext)) == {"url": url, "secret": SECRET}
    sinks.delete_sink(sessions, tenant, "chat")
    entries = sorted(rows(sessions, AuditLedgerEntry, tenant_id=tenant, entity_type="alert_sink"),
                     key=lambda e: e.created_at)  # fmt: skip
    assert [e.event_type for e in entries] == ["SINK_CREATED", "SINK_UPDATED", "SINK_DELETED"]
    assert entries[0].id == derive_id(
        "audit-ledger", f"{tenant}/alert-sink/chat/SINK_CREATED/{view.created_at.isoformat()}"
    )
    assert entries[1].id == derive_id(
        "audit-ledger", f"{tenant}/alert-sink/chat/SINK_UPDATED/{again.updated_at.isoformat()}"
    )
    assert entries[1].before_state["min_severity"] == "LOW"
    assert entries[1].after_state["min_severity"] == "HIGH"
    for entry in entries:
        text = json.dumps([entry.before_state, entry.after_state])
        assert SECRET not in text and "tok3n" not in text
        assert entry.entity_id == sinks.sink_id_of(tenant, "chat")


# ----- end to end, and the CLI -------------------------------------------------------------------


def test_a_reconciliation_finding_reaches_the_webhook(settings, sessions, box, tenant):
    from domain.reconciliation import WorkflowState
    from tests.activities.test_audit_alerts import emit_findings

    with receiver(SECRET) as rx:
        allow_egress(sessions, tenant, rx.url)
        add_webhook(sessions, box, tenant, "hook", f"{rx.url}/hook")
        emit_findings(sessions, tenant, f"r-stale-{tenant}", WorkflowState.TERMINATED)
        config = ReactorConfig(group=f"test-audit-{uuid.uuid4().hex[:8]}", sweep_overlap=5)
        audit = Reactor(sessions, audit_handlers(FatigueSettings()), config)
        drain(audit)
        run_until(reactor_for(sessions, sender_for(settings, sessions, box)),
                  delivered(sessions, tenant))  # fmt: skip
        [got] = rx.at("/hook")
    assert got.verified and got.json["alert_type"] == "STALE_RUN"
    assert got.json["run_id"] == f"r-stale-{tenant}"


def test_the_cli_adds_lists_tests_and_removes_sinks_and_shows_every_attempt(
    settings, sessions, monkeypatch, capsys, tenant
):
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))

    def cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    with receiver(SECRET) as rx:
        url = f"{rx.url}/cli/T0/s3cr3t-path"
        code, out, err = cli("sinks", "add", tenant, "hook", "--kind", "webhook", "--url", url,
                             "--min-severity", "HIGH", stdin=SECRET + "\n")  # fmt: skip
        assert code == 0, err
        assert out == (f"sink added for tenant {tenant}: hook (webhook → {rx.url}): HIGH and "
                       "above, every type; healthy\n")  # fmt: skip
        code, out, _ = cli("sinks", "list", tenant, "--json")
        assert code == 0 and [s["name"] for s in json.loads(out)] == ["hook"]
        assert SECRET not in out and "s3cr3t-path" not in out
        code, out, err = cli("sinks", "test", tenant, "hook")  # no allow-list entry yet
        assert code == 1 and out.startswith("sink hook: REFUSED (egress refused: 127.0.0.1 is")
        assert err == "error: the test message to sink hook was not delivered\n"
        assert cli("tenant", "egress", tenant, "--allow", rx.url)[0] == 0
        code, out, _ = cli("sinks", "test", tenant, "hook")
        assert code == 0 and out.startswith("sink hook: DELIVERED 200 in "), out
        rx.answer("/cli/T0/s3cr3t-path", 503)
        code, out, _ = cli("sinks", "test", tenant, "hook")
        assert code == 1 and f"FAILED 503 ({rx.url} answered 503)" in out, out
        tests = rx.at("/cli/T0/s3cr3t-path")
        assert [(r.verified, r.json["alert_type"]) for r in tests] == [(True, "SINK_TEST")] * 2

        code, out, _ = cli("alerts", "--deliveries", "--tenant", tenant)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 3 and "s3cr3t" not in out and SECRET not in out
        assert lines[0].endswith("ms") and f"[{tenant}] hook (webhook) SINK_TEST" in lines[0]
        assert ": FAILED 503 (" in lines[0] and ": DELIVERED 200 " in lines[1]
        assert ": REFUSED (egress refused: " in lines[2]
        code, out, _ = cli("alerts", "--deliveries", "--tenant", tenant, "--sink", "hook", "--json")
        assert code == 0 and [a["outcome"] for a in json.loads(out)] == [
            "FAILED", "DELIVERED", "REFUSED"]  # fmt: skip
        code, _, err = cli("alerts", "--deliveries", "--suppressed")
        assert code == 2 and "not allowed with argument" in err

    other = new_tenant(sessions)
    for argv in (("sinks", "test", other, "hook"), ("sinks", "remove", other, "hook")):
        code, _, err = cli(*argv)
        assert (code, err) == (1, f"error: unknown sink 'hook' for tenant '{other}'\n")
    for argv, message in (
        (("--kind", "webhook", "--url", "ftp://x"), "url: must be an http or https URL"),
        (("--kind", "email", "--host", "smtp.example.com", "--port", "0", "--from",
          "a@example.com", "--to", "b@example.com"), "port: Input should be greater than"),
        (("--kind", "webhook", "--url", "https://x.example", "--min-severity", "URGENT"),
         "min_severity: Input should be"),
    ):  # fmt: skip
        code, _, err = cli("sinks", "add", tenant, "bad", *argv, stdin=SECRET)
        assert code == 1 and err.startswith("error: ") and message in err, err
    code, out, _ = cli("sinks", "add", tenant, "short", "--kind", "webhook", "--url",
                       "https://x.example", stdin="too-short")  # fmt: skip
    assert code == 1
    assert [s.name for s in sinks.list_sinks(sessions, tenant)] == ["hook"]
    code, out, _ = cli("sinks", "remove", tenant, "hook")
    assert (code, out) == (0, f"sink hook removed for tenant {tenant}\n")
    assert cli("sinks", "list", tenant) == (0, f"no sinks for tenant {tenant}\n", "")
