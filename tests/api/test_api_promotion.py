"""Promotion authority comes from the credential, and a tenant's promotion limits hold
(the finding of the hostile-tenant probe): real dev server, real worker, both databases."""

import asyncio
import json
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from db.models import AuditLedgerEntry, Candidate, Incident, PromotionDecisionRecord
from domain.candidates import candidate_workflow_id
from services.api_keys import create_key, list_keys
from services.errors import ApiKeyError
from services.tenants import set_promotion_settings
from tests.helpers import running_worker

pytestmark = pytest.mark.timeout(120)

STRICT = {"policyId": "strict", "policyVersion": "1"}


def candidate(metadata: dict | None = None, **over) -> dict:
    """A HIGH candidate with one signal: DEFERRED by every policy, waiting for a human."""
    return {
        "candidate_id": f"c-{uuid.uuid4().hex[:12]}",
        "correlationRuleId": "rule-latency",
        "correlationRuleVersion": "2",
        "signalCount": 1,
        "severity": "HIGH",
        "service": "checkout",
        "metadata": metadata or {"policyId": "default", "policyVersion": "1"},
    } | over


def key_headers(sessions, tenant: str, authority: str, **options) -> tuple[str, dict]:
    key_id, key = create_key(sessions, tenant, authority, **options)
    return key_id, {"X-API-Key": key}


def scalar(sessions, statement) -> int:
    with sessions() as session:
        return session.scalar(statement) or 0


def incidents_of(sessions, candidate_id: str) -> list[Incident]:
    with sessions() as session:
        return [
            i
            for i in session.scalars(select(Incident))
            if (i.details or {}).get("candidate_id") == candidate_id
        ]


def decisions_of(sessions, candidate_id: str) -> list[str]:
    record = PromotionDecisionRecord
    stmt = select(record.decision).where(record.candidate_id == candidate_id)
    with sessions() as session:
        return list(session.scalars(stmt.order_by(record.decided_at)))


def audit_rows(sessions, tenant: str) -> list[AuditLedgerEntry]:
    with sessions() as session:
        stmt = select(AuditLedgerEntry).where(AuditLedgerEntry.tenant_id == tenant)
        return list(session.scalars(stmt))


def status_of(sessions, candidate_id: str) -> str | None:
    with sessions() as session:
        row = session.get(Candidate, candidate_id)
        return None if row is None else row.status


async def executions(dev_env, candidate_id: str) -> int:
    query = f'WorkflowId="{candidate_workflow_id(candidate_id)}"'
    return len([e async for e in dev_env.client.list_workflows(query)])


async def submit_deferred(api, dev_env, headers: dict, body: dict) -> str:
    submitted = await api.post("/candidates", json=body, headers=headers)
    assert submitted.status_code == 202, submitted.text
    handle = dev_env.client.get_workflow_handle(submitted.json()["workflow_id"])
    assert (await handle.result())["decision"] == "DEFER"
    return body["candidate_id"]


async def test_a_body_claiming_an_authority_is_refused_and_promotes_nothing(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    """The probe: a TENANT_ADMIN key sends EMERGENCY_OVERRIDE for a strict candidate."""
    keys = tenant_keys()
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        cid = await submit_deferred(api, dev_env, keys.admin, candidate(STRICT))
        path = f"/candidates/{cid}/promote"
        for claim in (
            {"authority_type": "EMERGENCY_OVERRIDE", "justification": "trust me"},
            {"authorityType": "EMERGENCY_OVERRIDE"},
            {"actor_id": "alice"},
            {"session_id": "s-1"},
        ):
            [field] = [name for name in claim if name != "justification"]
            refused = await api.post(path, json=claim, headers=keys.admin)
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"] == (
                f"body.{field}: {field} may not be sent: who promotes, and with which "
                "authority, is the API key's"
            )
        assert await executions(dev_env, cid) == 1  # nothing was started
        assert (status_of(sessions, cid), decisions_of(sessions, cid)) == ("DEFERRED", ["DEFER"])

        # Without the claim the key promotes as what the operator maps TENANT_ADMIN to
        # (HUMAN_OPERATOR), which the strict policy does not let promote.
        as_key = await api.post(path, json={"justification": "trust me"}, headers=keys.admin)
        assert as_key.status_code == 200, as_key.text
        result = as_key.json()
        assert (result["decision"], result["incident_id"]) == ("DEFER", None)
        assert result["authority"]["authority_type"] == "HUMAN_OPERATOR"
        assert result["authority"]["authority_id"] == f"apikey:{keys.ids['TENANT_ADMIN']}"
        assert "HUMAN_OPERATOR may not promote under policy strict v1" in result["reason"]
    assert incidents_of(sessions, cid) == []
    assert status_of(sessions, cid) == "DEFERRED"


async def test_a_key_given_on_call_sre_by_the_operator_promotes_a_strict_candidate(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys()
    sre_id, sre = key_headers(
        sessions, keys.tenant, "TENANT_ADMIN", promotion_authority="ON_CALL_SRE"
    )
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        cid = await submit_deferred(api, dev_env, keys.admin, candidate(STRICT))
        promoted = await api.post(
            f"/candidates/{cid}/promote", json={"justification": "paged"}, headers=sre
        )
    assert promoted.status_code == 200, promoted.text
    result = promoted.json()
    assert result["decision"] == "PROMOTE" and result["incident_id"]
    assert result["authority"] == {
        "authority_type": "ON_CALL_SRE",
        "authority_id": f"apikey:{sre_id}",
        "session_id": cid,
        "justification": "paged",
    }
    [incident] = incidents_of(sessions, cid)
    assert incident.id == result["incident_id"]
    assert incident.details["authority"]["authority_type"] == "ON_CALL_SRE"
    [listed] = [k for k in list_keys(sessions, keys.tenant) if k["id"] == sre_id]
    assert listed["promotion_authority"] == "ON_CALL_SRE"
    [created] = [
        a.after_state
        for a in audit_rows(sessions, keys.tenant)
        if a.entity_id == sre_id and a.event_type == "API_KEY_CREATED"
    ]
    assert created["promotion_authority"] == "ON_CALL_SRE"


async def test_a_key_whose_authority_maps_to_nothing_may_not_promote(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys("TENANT_ADMIN", "TENANT_USER")
    user_id = keys.ids["TENANT_USER"]
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        cid = await submit_deferred(api, dev_env, keys.admin, candidate())
        refused = await api.post(f"/candidates/{cid}/promote", headers=keys.headers["TENANT_USER"])
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        f"apikey:{user_id} (TENANT_USER) may not promote: the key has no promotion authority "
        "and PROMOTION_AUTHORITIES maps TENANT_USER to nothing (mapped: TENANT_ADMIN, "
        "FOUNDER_ONLY)"
    )
    assert await executions(dev_env, cid) == 1
    assert decisions_of(sessions, cid) == ["DEFER"] and incidents_of(sessions, cid) == []


async def test_the_operators_mapping_decides_and_never_hands_out_auto_engine(
    dev_env, app_settings, sessions, tenant_keys
):
    keys = tenant_keys("TENANT_ADMIN", "TENANT_USER")
    with pytest.raises(ApiKeyError, match="AUTO_ENGINE is the promotion engine's own authority"):
        create_key(sessions, keys.tenant, "TENANT_ADMIN", promotion_authority="AUTO_ENGINE")
    with pytest.raises(ApiKeyError, match="promotion_authority: 'ROOT' is not one of"):
        create_key(sessions, keys.tenant, "TENANT_ADMIN", promotion_authority="ROOT")
    mapping = {"TENANT_ADMIN": "AUTO_ENGINE", "TENANT_USER": "ON_CALL_SRE"}
    settings = app_settings.model_copy(update={"promotion_authorities": mapping})
    app = create_app(settings, sessions, dev_env.client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as api:
        body = candidate()
        submitted = await api.post("/candidates", json=body, headers=keys.admin)
        assert submitted.status_code == 202  # no worker: the candidate stays PENDING
        path = f"/candidates/{body['candidate_id']}/promote"
        admin = await api.post(path, headers=keys.admin)
        assert admin.status_code == 403
        assert (
            "PROMOTION_AUTHORITIES[TENANT_ADMIN]: AUTO_ENGINE is the promotion engine's"
            in (admin.json()["detail"])
        )
        user = await api.post(path, headers=keys.headers["TENANT_USER"])
        assert user.status_code == 409  # mapped to ON_CALL_SRE: may promote, but not PENDING
        assert "is PENDING, not DEFERRED" in user.json()["detail"]
    await dev_env.client.get_workflow_handle(submitted.json()["workflow_id"]).terminate("done")


async def test_a_policy_outside_the_tenants_list_is_refused_and_nothing_is_written(
    dev_env, api, sessions, tenant_keys
):
    keys = tenant_keys()
    set_promotion_settings(sessions, keys.tenant, policies=["default"])
    for metadata in (STRICT, {"policyId": "no-such-policy", "policyVersion": "1"}):
        body = candidate(metadata)
        refused = await api.post("/candidates", json=body, headers=keys.admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == (
            f"body.metadata.policy_id: metadata.policy_id: tenant {keys.tenant!r} may not use "
            f"promotion policy {metadata['policyId']!r} (allowed: default)"
        )
        assert status_of(sessions, body["candidate_id"]) is None
        assert await executions(dev_env, body["candidate_id"]) == 0
    set_promotion_settings(sessions, keys.tenant, policies=[])
    refused = await api.post("/candidates", json=candidate(), headers=keys.admin)
    assert refused.status_code == 422 and "(allowed: none)" in refused.json()["error"]


async def test_a_signal_count_past_the_bound_is_refused_naming_the_bound(
    dev_env, api, sessions, tenant_keys
):
    keys = tenant_keys()
    count = select(func.count()).where(Candidate.tenant_id == keys.tenant)
    huge = candidate(signalCount=1e9)
    refused = await api.post("/candidates", json=huge, headers=keys.admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == (
        "body.signal_count: signal_count: 1000000000 is above the bound 10000: tenant "
        f"{keys.tenant!r} allows 0 to 10000 (max_signal_count)"
    )
    negative = await api.post("/candidates", json=candidate(signalCount=-1), headers=keys.admin)
    assert negative.status_code == 422 and "body.signalCount" in negative.json()["error"]
    set_promotion_settings(sessions, keys.tenant, max_signal_count=1000)
    over = await api.post("/candidates", json=candidate(signalCount=1001), headers=keys.admin)
    assert over.status_code == 422
    assert "1001 is above the bound 1000" in over.json()["error"]
    assert scalar(sessions, count) == 0
    assert await executions(dev_env, huge["candidate_id"]) == 0
    at_bound = await api.post("/candidates", json=candidate(signalCount=1000), headers=keys.admin)
    assert at_bound.status_code == 202, at_bound.text
    assert scalar(sessions, count) == 1
    await dev_env.client.get_workflow_handle(at_bound.json()["workflow_id"]).terminate("done")


async def test_cli_apikey_create_sets_the_promotion_authority(
    settings, sessions, monkeypatch, capsys, tenant_keys
):
    """`starter.py apikey create T --authority TENANT_ADMIN --promotion-authority ON_CALL_SRE`."""
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    tenant = tenant_keys().tenant

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = await cli("apikey", "create", tenant, "--authority", "TENANT_ADMIN",
                         "--promotion-authority", "ON_CALL_SRE", "--json")  # fmt: skip
    assert (code, err) == (0, "")
    created = json.loads(out)
    assert created["promotion_authority"] == "ON_CALL_SRE"
    [key] = [k for k in list_keys(sessions, tenant) if k["id"] == created["key_id"]]
    assert key["promotion_authority"] == "ON_CALL_SRE"
    [audit] = [a for a in audit_rows(sessions, tenant) if a.entity_id == created["key_id"]]
    assert (audit.event_type, audit.actor_id) == ("API_KEY_CREATED", "operator")
    assert audit.after_state["promotion_authority"] == "ON_CALL_SRE"
    code, out, _ = await cli("apikey", "list", "--tenant", tenant)
    assert f"tenant={tenant} TENANT_ADMIN, promotes as ON_CALL_SRE" in out

    before = len(list_keys(sessions, tenant))
    code, out, err = await cli("apikey", "create", tenant, "--authority", "TENANT_ADMIN",
                         "--promotion-authority", "AUTO_ENGINE")  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        "error: promotion_authority: AUTO_ENGINE is the promotion engine's own authority; "
        "it may never be given to a person or a key\n"
    )
    assert len(list_keys(sessions, tenant)) == before  # nothing written
