"""GET /incidents, POST /incidents/{id}/acknowledge and /resolve (real dev server, both
databases): a key sees and changes only its tenant's incidents (another tenant's is a 404
like an unknown one), acts as itself, and a refused change (409, 404, 422) writes nothing."""

import uuid

import pytest

from db.models import AuditLedgerEntry, Incident, OutboxEvent
from domain.enums import Severity
from tests.helpers import RunHandle, add_rule, echo_steps, rows, running_worker
from tests.incident_support import in_order, seed_incident

pytestmark = pytest.mark.timeout(120)

TEMPLATE = {"skill": "template", "input": {"template": "hello $who", "variables": {"who": "x"}}}


LIFECYCLE_ENTRIES = ("INCIDENT_ACKNOWLEDGED", "INCIDENT_RESOLVED")
LIFECYCLE_TOPICS = ("incident.acknowledged", "incident.resolved")


def lifecycle_rows(sessions, tenant: str) -> tuple[list, list]:
    """The tenant's incident lifecycle writes: audit-ledger entries and outbox events."""
    entries = [(e.event_type, e.entity_id, e.actor_id, e.actor_authority)
               for e in in_order(rows(sessions, AuditLedgerEntry, tenant_id=tenant))
               if e.event_type in LIFECYCLE_ENTRIES]  # fmt: skip
    events = [(e.topic, e.payload["incident_id"])
              for e in in_order(rows(sessions, OutboxEvent, tenant_id=tenant))
              if e.topic in LIFECYCLE_TOPICS]  # fmt: skip
    return entries, events


async def test_a_blocked_runs_incident_is_acknowledged_and_resolved_as_the_key(
    dev_env, api, app_settings, sessions, tenant_keys
):
    keys = tenant_keys("TENANT_USER", "TENANT_ADMIN")
    add_rule(sessions, keys.tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    user = keys.headers["TENANT_USER"]
    async with running_worker(dev_env.client, app_settings, sessions, app_settings.task_queue):
        started = await api.post("/runs", json={"steps": [*echo_steps(1), TEMPLATE]}, headers=user)
        assert started.status_code == 202, started.text
        handle = RunHandle(dev_env.client.get_workflow_handle(started.json()["workflow_id"]))
        assert (await handle.result())["status"] == "failed_policy"
    run_id = started.json()["run_id"]

    listed = await api.get("/incidents", params={"run_id": run_id}, headers=user)
    assert listed.status_code == 200, listed.text
    (incident,) = listed.json()
    assert (incident["category"], incident["status"], incident["tenant_id"]) == (
        "POLICY_VIOLATION", "OPEN", keys.tenant)  # fmt: skip
    path = f"/incidents/{incident['id']}"

    acked = await api.post(f"{path}/acknowledge", json={"note": "looking"}, headers=user)
    assert acked.status_code == 200, acked.text
    user_actor = f"apikey:{keys.ids['TENANT_USER']}"
    view = acked.json()
    assert (view["status"], view["acknowledged_by"], view["acknowledgement_note"]) == (
        "ACKNOWLEDGED", user_actor, "looking")  # fmt: skip
    resolved = await api.post(f"{path}/resolve", headers=keys.admin)  # no body: no note
    assert resolved.status_code == 200, resolved.text
    admin_actor = f"apikey:{keys.ids['TENANT_ADMIN']}"
    view = resolved.json()
    assert (view["status"], view["resolved_by"], view["resolution_note"]) == (
        "RESOLVED", admin_actor, None)  # fmt: skip
    done = lifecycle_rows(sessions, keys.tenant)
    assert done == (
        [("INCIDENT_ACKNOWLEDGED", incident["id"], user_actor, "TENANT_USER"),
         ("INCIDENT_RESOLVED", incident["id"], admin_actor, "TENANT_ADMIN")],
        [("incident.acknowledged", incident["id"]), ("incident.resolved", incident["id"])],
    )  # fmt: skip

    again = await api.post(f"{path}/resolve", json={"note": "twice"}, headers=keys.admin)
    assert again.status_code == 409, again.text
    assert again.json() == {"detail": f"incident '{incident['id']}' is already RESOLVED"}
    late_ack = await api.post(f"{path}/acknowledge", headers=user)
    assert late_ack.status_code == 409
    assert late_ack.json()["detail"] == (
        f"incident '{incident['id']}' is RESOLVED: only an OPEN incident can be acknowledged"
    )
    assert lifecycle_rows(sessions, keys.tenant) == done
    resolved_only = await api.get("/incidents", params={"status": "RESOLVED"}, headers=user)
    assert [i["id"] for i in resolved_only.json()] == [incident["id"]]


async def test_another_tenants_incident_is_unknown_and_never_listed(api, sessions, tenant_keys):
    mine, theirs = tenant_keys(), tenant_keys()
    own = seed_incident(sessions, mine.tenant)
    foreign = seed_incident(sessions, theirs.tenant)
    unknown = str(uuid.uuid4())

    listed = await api.get("/incidents", headers=mine.admin)
    assert [i["id"] for i in listed.json()] == [own]
    for change in ("acknowledge", "resolve"):
        for incident_id in (foreign, unknown):
            response = await api.post(f"/incidents/{incident_id}/{change}", headers=mine.admin)
            assert response.status_code == 404, response.text
            assert response.json() == {"detail": f"unknown incident '{incident_id}'"}
    assert lifecycle_rows(sessions, theirs.tenant) == ([], [])
    assert lifecycle_rows(sessions, mine.tenant) == ([], [])
    (untouched,) = rows(sessions, Incident, id=foreign)
    assert (untouched.status, untouched.acknowledged_at) == ("OPEN", None)
    theirs_listed = await api.get("/incidents", headers=theirs.admin)
    assert [i["id"] for i in theirs_listed.json()] == [foreign]


async def test_filters_are_newest_first_and_bad_requests_are_422_writing_nothing(
    api, sessions, tenant_keys
):
    keys = tenant_keys()
    low = seed_incident(sessions, keys.tenant, Severity.LOW)
    critical = seed_incident(sessions, keys.tenant, Severity.CRITICAL)

    async def ids(**params) -> list[str]:
        response = await api.get("/incidents", params=params, headers=keys.admin)
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()]

    assert await ids() == [critical, low]
    assert await ids(limit=1) == [critical]
    assert await ids(severity="LOW") == [low]
    assert await ids(status="ACKNOWLEDGED") == []
    for params, field in (({"status": "CLOSED"}, "status"), ({"severity": "URGENT"}, "severity"),
                          ({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
                          ({"run_id": "bad id"}, "run_id")):  # fmt: skip
        response = await api.get("/incidents", params=params, headers=keys.admin)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", field]

    path = f"/incidents/{low}/acknowledge"
    for body, loc in (
        ({"actor": "someone-else"}, ["body", "actor"]),  # who acts is the key
        ({"note": ""}, ["body", "note"]),
        ({"note": 5}, ["body", "note"]),
        ({"note": "x" * 2001}, ["body", "note"]),
        ({"note": "a\x00b"}, ["body", "note"]),
        ([], ["body"]),
    ):
        response = await api.post(path, json=body, headers=keys.admin)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["detail"][0]["loc"] == loc, (body, response.text)
    bad_id = await api.post("/incidents/no such id/resolve", headers=keys.admin)
    assert bad_id.status_code == 422
    missing_key = await api.post(path, json={"note": "n"})
    assert missing_key.status_code == 401
    assert lifecycle_rows(sessions, keys.tenant) == ([], [])
    assert {i.status for i in rows(sessions, Incident, tenant_id=keys.tenant)} == {"OPEN"}
