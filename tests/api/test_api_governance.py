"""A run started over HTTP is submitted as its key: an option that loosens the tenant's
governance settings is a 403 naming the option unless the tenant lets the key's authority
loosen it, and nothing is started (real dev server, real worker, both databases)."""

import pytest
from sqlalchemy import func, select, update

from db.models import Run, Tenant
from tests.helpers import echo_steps, running_worker

pytestmark = pytest.mark.timeout(120)


def set_governance(sessions, tenant_id, governance):
    with sessions.begin() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(governance=governance))


def runs_of(sessions, tenant_id) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(Run.tenant_id == tenant_id)) or 0


async def test_a_user_key_cannot_shorten_the_sla_to_resume_itself(
    dev_env, api, sessions, tenant_keys
):
    """What was seen: a TENANT_USER key sent a 1 s SLA that CONTINUEs, and its POLICY_CHANGE
    pause (only TENANT_ADMIN may lift it) resumed itself a second later."""
    keys = tenant_keys("TENANT_USER", "TENANT_ADMIN")
    body = {"steps": echo_steps(1),
            "options": {"pause_sla_seconds": 1, "pause_timeout_behavior": "CONTINUE"}}  # fmt: skip
    response = await api.post("/runs", json=body, headers=keys.headers["TENANT_USER"])
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == (
        "option pause_sla_seconds=1 loosens the tenant's setting pause_sla_seconds=3600; the "
        "tenant does not allow runs submitted as TENANT_USER to loosen it"
    )
    assert runs_of(sessions, keys.tenant) == 0
    assert [w async for w in dev_env.client.list_workflows(f'TenantId="{keys.tenant}"')] == []


async def test_the_tenant_lets_an_admin_key_loosen_and_the_run_is_submitted_as_the_key(
    dev_env, api, app_settings, sessions, tenant_keys
):
    keys = tenant_keys("TENANT_USER", "TENANT_ADMIN")
    set_governance(sessions, keys.tenant, {"loosen": {"policy_check_enabled": ["TENANT_ADMIN"]}})
    body = {"steps": echo_steps(1), "options": {"policy_check_enabled": False}}
    refused = await api.post("/runs", json=body, headers=keys.headers["TENANT_USER"])
    assert refused.status_code == 403 and "policy_check_enabled=false" in refused.json()["detail"]
    async with running_worker(dev_env.client, app_settings, sessions, app_settings.task_queue):
        accepted = await api.post("/runs", json=body, headers=keys.admin)
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        handle = dev_env.client.get_workflow_handle(accepted.json()["workflow_id"])
        assert (await handle.result())["status"] == "succeeded"
    with sessions() as session:
        row = session.get(Run, run_id)
        assert row.config["policy_check_enabled"] is False
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payload = dev_env.client.data_converter.payload_converter.from_payloads(
        started.input.payloads)[0]  # fmt: skip
    assert payload["submitted_by"] == {"id": f"apikey:{keys.ids['TENANT_ADMIN']}",
                                       "authority": "TENANT_ADMIN"}  # fmt: skip


async def test_a_body_may_not_say_who_submits(api, sessions, tenant_keys):
    keys = tenant_keys("TENANT_USER")
    body = {"steps": echo_steps(1), "submitted_by": {"id": "x", "authority": "TENANT_ADMIN"}}
    response = await api.post("/runs", json=body, headers=keys.headers["TENANT_USER"])
    assert response.status_code == 422 and "submitted_by" in response.json()["error"]
    assert runs_of(sessions, keys.tenant) == 0


async def test_governance_settings_over_http_admin_only_audited_and_checked(
    api, sessions, tenant_keys
):
    from db.models import AuditLedgerEntry
    from tests.helpers import rows

    keys = tenant_keys("TENANT_USER", "TENANT_ADMIN")
    user = keys.headers["TENANT_USER"]
    assert (await api.get("/governance", headers=user)).json()["policy_check_enabled"] is None
    wanted = {
        "pause_timeout_behavior": "ESCALATE",
        "loosen": {"run_timeout_seconds": ["TENANT_ADMIN"]},
    }
    refused = await api.put("/governance", json=wanted, headers=user)
    assert refused.status_code == 403 and "TENANT_ADMIN" in refused.json()["detail"]
    for bad, field in (({"loosen": {"budget": ["TENANT_ADMIN"]}}, "unknown option 'budget'"),
                       ({"pause_sla_seconds": -1}, "pause_sla_seconds"),
                       ({"halt": False}, "halt")):  # fmt: skip
        response = await api.put("/governance", json=bad, headers=keys.admin)
        assert response.status_code == 422 and field in response.json()["detail"], response.text
    assert rows(sessions, AuditLedgerEntry, event_type="TENANT_GOVERNANCE_UPDATED",
                tenant_id=keys.tenant) == []  # fmt: skip
    accepted = await api.put("/governance", json=wanted, headers=keys.admin)
    assert accepted.status_code == 200, accepted.text
    assert (await api.get("/governance", headers=user)).json()[
        "pause_timeout_behavior"
    ] == "ESCALATE"
    (entry,) = rows(sessions, AuditLedgerEntry, event_type="TENANT_GOVERNANCE_UPDATED",
                    tenant_id=keys.tenant)  # fmt: skip
    assert entry.actor_id == f"apikey:{keys.ids['TENANT_ADMIN']}"
    assert entry.after_state["governance"]["loosen"] == {"run_timeout_seconds": ["TENANT_ADMIN"]}


async def test_approving_another_tenants_run_is_a_404_and_a_bad_digest_a_422(api, tenant_keys):
    owner, other = tenant_keys(), tenant_keys()
    started = await api.post("/runs", json={"steps": echo_steps(1)}, headers=owner.admin)
    run_id = started.json()["run_id"]
    digest = {"digest": "0" * 64}
    foreign = await api.post(f"/runs/{run_id}/approve", json=digest, headers=other.admin)
    assert foreign.status_code == 404, foreign.text
    bad = await api.post(f"/runs/{run_id}/approve", json={"digest": "xyz"}, headers=owner.admin)
    assert bad.status_code == 422 and "digest" in bad.text
