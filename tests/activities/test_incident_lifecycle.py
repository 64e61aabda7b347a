"""Incidents with a lifecycle (both databases): OPEN → ACKNOWLEDGED → RESOLVED, or OPEN →
RESOLVED; each change an audit-ledger entry and an outbox event under a key derived from the
incident, and a refused change writes nothing — through services.incidents and the CLI."""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from db.models import AuditLedgerEntry, Incident, OutboxEvent
from db.queries.evidence import governance_log
from domain.enums import Severity
from domain.ids import derive_id
from domain.messages import RollbackRequest
from services import incidents
from services.errors import AdminError, IncidentStateError, UnknownIncident
from services.ledger import Execution
from tests.helpers import add_rule, echo_steps, new_tenant, rows, running_worker, start_run
from tests.incident_support import in_order, seed_incident

pytestmark = pytest.mark.timeout(120)

LIFECYCLE_ENTRIES = ("INCIDENT_ACKNOWLEDGED", "INCIDENT_RESOLVED")
LIFECYCLE_TOPICS = ("incident.acknowledged", "incident.resolved")
TEMPLATE = {"skill": "template", "input": {"template": "hello $who", "variables": {"who": "x"}}}


def written(sessions, tenant: str) -> tuple[list, list]:
    """What a lifecycle change writes: the tenant's incident ledger entries and events."""
    entries = [(e.event_type, e.entity_id) for e in in_order(rows(sessions, AuditLedgerEntry,
               tenant_id=tenant)) if e.event_type in LIFECYCLE_ENTRIES]  # fmt: skip
    events = [(e.topic, e.payload["incident_id"]) for e in in_order(rows(sessions, OutboxEvent,
              tenant_id=tenant)) if e.topic in LIFECYCLE_TOPICS]  # fmt: skip
    return entries, events


async def test_a_failed_runs_incident_is_acknowledged_then_resolved(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        steps = [*echo_steps(1), TEMPLATE]
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        assert (await handle.result()).status == "failed_policy"
    (listed,) = incidents.list_incidents(sessions, tenant_id=tenant)
    assert (listed.source_run_id, listed.category, listed.status) == (
        run_id, "POLICY_VIOLATION", "OPEN")  # fmt: skip

    acked = incidents.acknowledge(sessions, listed.id, actor="ops-1", note="looking into it")
    assert (acked.status, acked.acknowledged_by, acked.acknowledgement_note) == (
        "ACKNOWLEDGED", "ops-1", "looking into it")  # fmt: skip
    assert acked.acknowledged_at is not None and acked.resolved_at is None
    resolved = incidents.resolve(sessions, listed.id, actor="ops-2", note="rule was right")
    assert (resolved.status, resolved.resolved_by, resolved.resolution_note) == (
        "RESOLVED", "ops-2", "rule was right")  # fmt: skip
    assert resolved.acknowledged_by == "ops-1"  # the acknowledgement stays

    entries = {e.event_type: e for e in rows(sessions, AuditLedgerEntry, entity_id=listed.id)}
    ack_entry, resolve_entry = entries["INCIDENT_ACKNOWLEDGED"], entries["INCIDENT_RESOLVED"]
    assert ack_entry.id == derive_id("audit-ledger", f"incident/{listed.id}/acknowledged")
    assert resolve_entry.id == derive_id("audit-ledger", f"incident/{listed.id}/resolved")
    assert (ack_entry.actor_id, ack_entry.before_state["status"], ack_entry.after_state) == (
        "ops-1", "OPEN", {"run_id": run_id, "incident_id": listed.id, "from_status": "OPEN",
                          "status": "ACKNOWLEDGED", "actor": "ops-1",
                          "note": "looking into it"})  # fmt: skip
    assert resolve_entry.before_state == {"run_id": run_id, "status": "ACKNOWLEDGED"}
    events = {e.topic: e for e in rows(sessions, OutboxEvent, run_id=run_id)}
    assert events["incident.acknowledged"].payload["note"] == "looking into it"
    assert events["incident.resolved"].payload == {
        "tenant_id": tenant, "run_id": run_id, "incident_id": listed.id,
        "from_status": "ACKNOWLEDGED", "status": "RESOLVED", "actor": "ops-2",
        "note": "rule was right"}  # fmt: skip
    with sessions() as session:  # the run's governance log tells the incident's lifecycle
        log = [e.event_type for e in governance_log(session, run_id).events]
    assert log[-2:] == ["INCIDENT_ACKNOWLEDGED", "INCIDENT_RESOLVED"]


def test_an_open_incident_is_resolved_at_once(sessions):
    tenant = new_tenant(sessions)
    incident_id = seed_incident(sessions, tenant)
    resolved = incidents.resolve(sessions, incident_id, actor="ops-1")
    assert (resolved.status, resolved.resolved_by, resolved.resolution_note) == (
        "RESOLVED", "ops-1", None)  # fmt: skip
    assert resolved.acknowledged_at is None
    assert written(sessions, tenant) == (
        [("INCIDENT_RESOLVED", incident_id)], [("incident.resolved", incident_id)])  # fmt: skip


def test_refused_changes_name_the_problem_and_write_nothing(sessions):
    tenant, other = new_tenant(sessions), new_tenant(sessions)
    resolved, rolled_back, theirs = (seed_incident(sessions, t) for t in (tenant, tenant, other))
    incidents.resolve(sessions, resolved, actor="ops-1")
    (rolled_run,) = [i.source_run_id for i in rows(sessions, Incident, id=rolled_back)]
    compensation = RollbackRequest(run_id=rolled_run, tenant_id=tenant, reason="saga")
    incidents.rollback(sessions, Execution(f"run-{rolled_run}", "e1"), compensation)
    before = written(sessions, tenant), written(sessions, other)
    unknown = str(uuid.uuid4())
    for change, incident_id, kwargs, error, message in (
        (incidents.resolve, resolved, {}, IncidentStateError,
         f"incident '{resolved}' is already RESOLVED"),
        (incidents.acknowledge, resolved, {}, IncidentStateError,
         f"incident '{resolved}' is RESOLVED: only an OPEN incident can be acknowledged"),
        (incidents.acknowledge, rolled_back, {}, IncidentStateError,
         f"incident '{rolled_back}' was rolled back with its run: it cannot be acknowledged"),
        (incidents.resolve, rolled_back, {}, IncidentStateError,
         f"incident '{rolled_back}' was rolled back with its run: it cannot be resolved"),
        (incidents.resolve, unknown, {}, UnknownIncident, f"unknown incident '{unknown}'"),
        (incidents.acknowledge, theirs, {"tenant_id": tenant}, UnknownIncident,
         f"unknown incident '{theirs}'"),  # another tenant's: as if unknown
        (incidents.acknowledge, theirs, {"actor": "  "}, AdminError, "actor: say who acts"),
        (incidents.resolve, theirs, {"note": "x" * 2001}, AdminError,
         "note: at most 2000 characters, got 2001"),
        (incidents.resolve, theirs, {"note": "a\x00b"}, AdminError,
         "note: NUL characters are not allowed"),
    ):  # fmt: skip
        with pytest.raises(error) as refused:
            change(sessions, incident_id, **({"actor": "ops-1"} | kwargs))
        assert str(refused.value).startswith(message), (change.__name__, refused.value)
    assert (written(sessions, tenant), written(sessions, other)) == before
    statuses = {i.id: i.status for i in rows(sessions, Incident, tenant_id=tenant)}
    assert statuses == {resolved: "RESOLVED", rolled_back: "ROLLED_BACK"}
    (untouched,) = rows(sessions, Incident, id=theirs)
    assert (untouched.status, untouched.acknowledged_at, untouched.resolved_at) == (
        "OPEN", None, None)  # fmt: skip


def test_concurrent_resolves_resolve_once_and_the_others_are_refused(sessions):
    """The incident row is locked for the change: the losers read RESOLVED and are refused
    (not a duplicate ledger key)."""
    tenant = new_tenant(sessions)
    incident_id = seed_incident(sessions, tenant)

    def attempt(n: int) -> str:
        try:
            return incidents.resolve(sessions, incident_id, actor=f"ops-{n}").status
        except IncidentStateError as exc:
            return str(exc)

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, range(4)))
    assert outcomes == ["RESOLVED", *[f"incident '{incident_id}' is already RESOLVED"] * 3]
    assert written(sessions, tenant) == (
        [("INCIDENT_RESOLVED", incident_id)], [("incident.resolved", incident_id)])  # fmt: skip


def test_incidents_are_listed_newest_first_by_tenant_status_severity_and_run(sessions):
    tenant, other = new_tenant(sessions), new_tenant(sessions)
    low, high, critical = (seed_incident(sessions, tenant, s)
                           for s in (Severity.LOW, Severity.HIGH, Severity.CRITICAL))  # fmt: skip
    seed_incident(sessions, other)
    incidents.acknowledge(sessions, high, actor="ops-1")

    def ids(**filters) -> list[str]:
        return [v.id for v in incidents.list_incidents(sessions, **filters)]

    assert ids(tenant_id=tenant) == [critical, high, low]
    assert ids(tenant_id=tenant, limit=2) == [critical, high]
    assert ids(tenant_id=tenant, status="OPEN") == [critical, low]
    assert ids(tenant_id=tenant, status="ACKNOWLEDGED", severity="HIGH") == [high]
    assert ids(tenant_id=tenant, severity="MEDIUM") == []
    (run_of_low,) = [i.source_run_id for i in rows(sessions, Incident, id=low)]
    assert ids(run_id=run_of_low) == [low]
    for filters, message in (
        ({"status": "CLOSED"}, "unknown status 'CLOSED' (one of OPEN, ACKNOWLEDGED, RESOLVED, "
                               "ROLLED_BACK)"),
        ({"severity": "URGENT"}, "unknown severity 'URGENT' (one of LOW, MEDIUM, HIGH, CRITICAL)"),
        ({"limit": 0}, "limit: at least 1, got 0"),
    ):  # fmt: skip
        with pytest.raises(AdminError) as refused:
            ids(tenant_id=tenant, **filters)
        assert str(refused.value) == message


def test_cli_lists_acknowledges_and_resolves_and_refuses_with_one_line(
    settings, sessions, monkeypatch, capsys
):
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    tenant = new_tenant(sessions)
    incident_id = seed_incident(sessions, tenant)

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(["incidents", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = cli("list", "--tenant", tenant, "--json")
    assert code == 0
    assert [(v["id"], v["status"]) for v in json.loads(out)] == [(incident_id, "OPEN")]
    code, out, _ = cli("ack", incident_id, "--actor", "ops-1", "--note", "on it")
    assert (code, out) == (0, f"incident {incident_id}: ACKNOWLEDGED by ops-1 (on it)\n")
    code, out, _ = cli("resolve", incident_id, "--actor", "ops-2", "--json")
    assert code == 0 and json.loads(out)["resolved_by"] == "ops-2"
    code, out, _ = cli("list", "--tenant", tenant, "--status", "RESOLVED")
    assert code == 0 and out.startswith(f"{incident_id} RESOLVED ")
    assert "  acknowledged " in out and "by ops-1: on it" in out and "by ops-2" in out
    after = written(sessions, tenant)
    assert len(after[0]) == len(after[1]) == 2

    for argv, exit_code, error in (
        (["resolve", incident_id, "--actor", "ops-1"], 1,
         f"error: incident '{incident_id}' is already RESOLVED\n"),
        (["ack", incident_id, "--actor", "ops-1"], 1,
         f"error: incident '{incident_id}' is RESOLVED: only an OPEN incident can be "
         "acknowledged\n"),
        (["ack", "no-such-incident", "--actor", "ops-1"], 1,
         "error: unknown incident 'no-such-incident'\n"),
        (["ack", incident_id], 2, "Missing option '--actor'"),
        (["list", "--status", "CLOSED"], 2, "Invalid value for '--status'"),
        (["list", "--severity", "URGENT"], 2, "Invalid value for '--severity'"),
    ):  # fmt: skip
        code, _, err = cli(*argv)
        assert code == exit_code and error in err, (argv, code, err)
    assert written(sessions, tenant) == after
    code, out, _ = cli("list", "--tenant", new_tenant(sessions))
    assert (code, out) == (0, "no incidents\n")
