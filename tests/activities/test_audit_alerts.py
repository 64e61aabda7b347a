"""Audit handlers on both databases: findings and failed runs become alerts, through fatigue."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert

from db.models import AuditExpectation, DomainAck, SuppressedAlert, TenantAlertSettings
from db.queries.alerts import list_alerts, list_suppressed
from domain.alert_fatigue import FatigueSettings
from domain.contract import CREATE_INCIDENT, FINALIZE_RUN, START_TRACE
from domain.ids import derive_id
from domain.reconciler import AckRow, ExpectationRow
from domain.reconciliation import WorkflowState, assess, event_plan
from events.handlers import audit_handlers
from events.reactor import Reactor, ReactorConfig
from services.alerts import save_tenant_settings
from services.events import emit
from services.ledger import utcnow
from tests.helpers import rows

pytestmark = pytest.mark.timeout(60)


def tenant() -> str:
    return f"t-alerts-{uuid.uuid4().hex[:8]}"


def emit_findings(sessions, tenant_id: str, run_id: str, state: WorkflowState, acks=()) -> None:  # noqa: ANN001
    """The events the reconciliation writes for a run whose finalize never came."""
    now = utcnow()
    expectations = [
        ExpectationRow(*START_TRACE, now - timedelta(seconds=5)),
        ExpectationRow(*FINALIZE_RUN, now - timedelta(seconds=5)),
    ]
    found = assess(run_id, expectations, list(acks), state, now)
    with sessions.begin() as session:
        for event in event_plan(found, found.findings):
            emit(session, key=event.key + uuid.uuid4().hex, topic=event.topic,
                 tenant_id=tenant_id, run_id=run_id, payload=event.payload)  # fmt: skip


def deliver(sessions, fatigue: FatigueSettings | None = None) -> None:  # noqa: ANN001
    cfg = ReactorConfig(group=f"test-audit-{uuid.uuid4().hex[:8]}", sweep_overlap=5)
    reactor = Reactor(sessions, audit_handlers(fatigue or FatigueSettings()), cfg)
    for _ in range(50):
        if not reactor.poll_once():
            return


def test_findings_become_alerts_of_their_type(sessions):
    t = tenant()
    emit_findings(sessions, t, "r-stale", WorkflowState.TERMINATED)
    emit_findings(sessions, t, "r-late", WorkflowState.RUNNING)
    emit_findings(
        sessions, t, "r-drift", WorkflowState.COMPLETED,
        [AckRow(*FINALIZE_RUN), AckRow(*START_TRACE), AckRow(*CREATE_INCIDENT)],
    )  # fmt: skip
    emit_findings(sessions, t, "r-missing", WorkflowState.COMPLETED, [AckRow(*FINALIZE_RUN)])
    deliver(sessions)
    with sessions() as session:
        alerts = list_alerts(session, t, 50)
    got = sorted((a["alert_type"], a["run_id"], a["domain"], a["severity"]) for a in alerts)
    assert got == [
        ("DRIFT", "r-drift", "incidents", "MEDIUM"),
        ("MISSING_ACK", "r-late", "orchestrator", "MEDIUM"),
        ("MISSING_ACK", "r-missing", "traces", "HIGH"),
        ("STALE_RUN", "r-stale", "orchestrator", "HIGH"),
    ]
    stale = next(a for a in alerts if a["alert_type"] == "STALE_RUN")
    assert "TERMINATED" in stale["title"] and "traces/start_trace" in stale["title"]
    assert [a["created_at"] for a in alerts] == sorted(
        (a["created_at"] for a in alerts), reverse=True
    )


def test_a_repeat_within_the_dedup_window_is_suppressed_as_duplicate(sessions):
    t = tenant()
    emit_findings(sessions, t, "r1", WorkflowState.TERMINATED)
    deliver(sessions)
    emit_findings(sessions, t, "r1", WorkflowState.TERMINATED)  # a new event, same alert
    deliver(sessions, FatigueSettings(dedup_window_seconds=60))
    with sessions() as session:
        assert len(list_alerts(session, t, 50)) == 1
        [held] = list_suppressed(session, t, 50)
    assert (held["alert_type"], held["reason"]) == ("STALE_RUN", "DUPLICATE")


@pytest.mark.parametrize(
    ("own", "reason"),
    [
        ({"max_alerts_per_hour": 1}, "TENANT_RATE_LIMIT"),
        ({"domain_cooldowns": {"orchestrator": 600}}, "DOMAIN_COOLDOWN"),
        ({"alerts_enabled": False}, "DISABLED"),
    ],
)
def test_tenant_settings_suppress_with_their_reason(sessions, own, reason):
    t = tenant()
    save_tenant_settings(sessions, t, **own)
    emit_findings(sessions, t, "r1", WorkflowState.TERMINATED)
    emit_findings(sessions, t, "r2", WorkflowState.TIMED_OUT)
    deliver(sessions)
    with sessions() as session:
        sent = list_alerts(session, t, 50)
        held = list_suppressed(session, t, 50)
    expected_sent = 0 if reason == "DISABLED" else 1
    assert len(sent) == expected_sent
    assert [h["reason"] for h in held] == [reason] * (2 - expected_sent)
    assert all(h["detail"] for h in held)
    assert len(rows(sessions, SuppressedAlert, tenant_id=t)) == 2 - expected_sent


def test_settings_refuse_negative_values_and_write_nothing(sessions):
    t = tenant()
    with pytest.raises(ValueError, match="max_alerts_per_hour"):
        save_tenant_settings(sessions, t, max_alerts_per_hour=-1)
    with sessions() as session:
        assert session.get(TenantAlertSettings, t) is None


def contract_rows(run_id: str, tenant_id: str, *, rogue: bool) -> tuple[list, list]:
    now = utcnow()
    expectations = [
        {"id": derive_id(run_id, "expectation", *FINALIZE_RUN), "run_id": run_id,
         "tenant_id": tenant_id, "domain": FINALIZE_RUN[0], "action": FINALIZE_RUN[1],
         "deadline": now, "created_at": now, "acked_at": now}
    ]  # fmt: skip
    acked = [FINALIZE_RUN, CREATE_INCIDENT] if rogue else [FINALIZE_RUN]
    acks = [
        {"id": derive_id(run_id, "ack", d, a, "ACKED"), "run_id": run_id, "tenant_id": tenant_id,
         "domain": d, "action": a, "status": "ACKED", "result_id": None, "rolled_back": False,
         "details": {}, "created_at": now}
        for d, a in acked
    ]  # fmt: skip
    return expectations, acks


def test_a_failed_run_alerts_only_when_its_contract_does_not_reconcile(sessions):
    t = tenant()
    for run_id, rogue in ((f"r-ok-{t}", False), (f"r-bad-{t}", True)):
        expectations, acks = contract_rows(run_id, t, rogue=rogue)
        with sessions.begin() as session:
            session.execute(insert(AuditExpectation), expectations)
            session.execute(insert(DomainAck), acks)
            emit(session, key=f"{run_id}/finalize", topic="run.failed", tenant_id=t,
                 run_id=run_id, payload={"status": "failed", "reason": "step failed"})  # fmt: skip
    deliver(sessions)
    with sessions() as session:
        [alert] = list_alerts(session, t, 50)
    assert (alert["alert_type"], alert["run_id"]) == ("RECONCILIATION_FAILED", f"r-bad-{t}")
    assert alert["details"]["drift"] == [list(CREATE_INCIDENT)]
