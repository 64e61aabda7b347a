"""The HTTP API against the real dev server, a real worker and both databases."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from db.models import Alert, AuditLedgerEntry, Candidate, Run
from services.api_keys import revoke_key
from tests.helpers import RunHandle, echo_steps, outcome, running_worker
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(120)

RUN_PATHS = ("", "/evidence", "/proof", "/governance")
SIGNALS = ("pause", "resume", "stop")


async def wait_for(api, path, headers, done, attempts=200):
    for _ in range(attempts):
        response = await api.get(path, headers=headers)
        if response.status_code == 200 and done(response.json()):
            return response.json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path}: condition never met (last: {response.text})")


async def in_slow_step(server) -> None:
    """The run is inside its slow step (a worker runs it: its updates get an answer)."""
    for _ in range(200):
        if any(hit.startswith("/slow/") for hit in server.hits):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the slow step never started")


def finished(view):
    return view["phase"] in ("COMPLETED", "FAILED") and view["workflow_status"] != "RUNNING"


def count_where(sessions, *criteria) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(*criteria)) or 0


async def test_health_needs_no_key_and_everything_else_does(api, sessions, tenant_keys):
    health = await api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
    keys = tenant_keys()
    for headers in ({}, {"X-API-Key": "gr_not-a-key"}, {"X-API-Key": "x" * 500}):
        response = await api.get("/runs/r-1", headers=headers)
        assert response.status_code == 401 and "X-API-Key" in response.json()["detail"]
    assert (await api.get("/alerts", headers=keys.admin)).status_code == 200
    revoke_key(sessions, keys.ids["TENANT_ADMIN"])
    assert (await api.get("/alerts", headers=keys.admin)).status_code == 401


async def test_start_read_and_inspect_a_run(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys()
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        body = {"run_id": run_id, "steps": echo_steps(3), "budget": "5"}
        started = await api.post("/runs", json=body, headers=keys.admin)
        assert started.status_code == 202, started.text
        assert started.json() == {
            "run_id": run_id,
            "workflow_id": f"run-{run_id}",
            "tenant_id": keys.tenant,
        }
        again = await api.post("/runs", json=body, headers=keys.admin)
        assert again.status_code == 409 and "already in use" in again.json()["detail"]
        view = await wait_for(api, f"/runs/{run_id}", keys.admin, finished)
    assert (view["phase"], view["status"], view["step_index"]) == ("COMPLETED", "succeeded", 3)
    assert view["tenant_id"] == keys.tenant and view["workflow_status"] == "COMPLETED"

    evidence = (await api.get(f"/runs/{run_id}/evidence", headers=keys.admin)).json()
    assert evidence["run_id"] == run_id and evidence["decisions"]["authorization"]["decision"]
    assert [e["outcome"] for e in evidence["policy_evaluations"]] == ["PASSED"]
    proof = (await api.get(f"/runs/{run_id}/proof", headers=keys.admin)).json()
    assert (proof["status"], proof["method"], proof["step_count"]) == ("VERIFIED", "HASH_CHAIN", 3)
    log = (await api.get(f"/runs/{run_id}/governance", headers=keys.admin)).json()
    assert log["metadata"]["tenant_id"] == keys.tenant
    assert log["events"][0]["event_type"] == "RUN_CREATED" and log["total_events"] > 2


async def test_another_tenants_run_is_a_404_like_an_unknown_run(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    owner, stranger = tenant_keys(), tenant_keys()
    started = await api.post("/runs", json={"steps": echo_steps(1)}, headers=owner.admin)
    run_id = started.json()["run_id"]  # no worker on this queue: the run stays open
    for path in RUN_PATHS:
        unknown = await api.get(f"/runs/no-such-run{path}", headers=stranger.admin)
        foreign = await api.get(f"/runs/{run_id}{path}", headers=stranger.admin)
        assert unknown.status_code == foreign.status_code == 404, path
        assert foreign.json()["detail"] == f"unknown run {run_id!r}"
    for name in SIGNALS:
        response = await api.post(f"/runs/{run_id}/{name}", headers=stranger.admin)
        assert response.status_code == 404, name
    history = await dev_env.client.get_workflow_handle(f"run-{run_id}").fetch_history()
    assert not [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    own = await api.get(f"/runs/{run_id}", headers=owner.admin)
    assert own.status_code == 200 and own.json()["tenant_id"] == owner.tenant

    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        await outcome(dev_env.client.get_workflow_handle(f"run-{run_id}"))
    for path in RUN_PATHS[1:]:  # from the database now: still another tenant's
        assert (await api.get(f"/runs/{run_id}{path}", headers=stranger.admin)).status_code == 404


async def test_resume_obeys_the_pause_authorities(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    with contextlib.ExitStack() as stack:
        await resume_obeys_the_pause_authorities(
            stack, dev_env, api, app_settings, sessions, task_queue, tenant_keys
        )


async def resume_obeys_the_pause_authorities(
    stack, dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys("TENANT_ADMIN", "TENANT_USER")
    user = keys.headers["TENANT_USER"]
    server = stack.enter_context(local_server())
    allow_egress(sessions, keys.tenant, server.url)
    slow = {"skill": "http", "input": {"url": f"{server.url}/slow/1.5"}}  # pause during it
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        started = await api.post("/runs", json={"steps": [slow, *echo_steps(1)]}, headers=user)
        run_id = started.json()["run_id"]
        await in_slow_step(server)
        paused = await api.post(
            f"/runs/{run_id}/pause", json={"reason": "APPROVAL_REQUIRED"}, headers=keys.admin
        )
        assert paused.status_code == 202, paused.text
        assert paused.json()["actor_id"] == f"apikey:{keys.ids['TENANT_ADMIN']}"
        assert paused.json()["state"]["pause_requested"] is True
        again = await api.post(f"/runs/{run_id}/pause", headers=keys.admin)
        assert again.status_code == 409 and "already paused" in again.json()["detail"]
        view = await wait_for(api, f"/runs/{run_id}", user, lambda v: v["pause"] is not None)
        assert view["status"] == "paused" and view["pause"]["reason"] == "APPROVAL_REQUIRED"

        refused = await api.post(f"/runs/{run_id}/resume", headers=user)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "TENANT_USER may not resume a APPROVAL_REQUIRED pause "
            "(allowed: TENANT_ADMIN, FOUNDER_ONLY)"
        )
        evidence = await wait_for(
            api, f"/runs/{run_id}/evidence", user, lambda e: e["decisions"]["control"]
        )
        # Both refused updates are audited: the second pause and the user's resume.
        kinds = [c["kind"] for c in evidence["decisions"]["control"]]
        assert kinds == ["PAUSE_REFUSED", "RESUME_REFUSED"], kinds
        refusal = evidence["decisions"]["control"][1]
        assert refusal["actor_id"] == f"apikey:{keys.ids['TENANT_USER']}"
        assert (await api.get(f"/runs/{run_id}", headers=user)).json()["status"] == "paused"

        resumed = await api.post(f"/runs/{run_id}/resume", headers=keys.admin)
        assert resumed.status_code == 202
        assert resumed.json()["state"]["pause"] is None  # answered once resolved
        view = await wait_for(api, f"/runs/{run_id}", user, finished)
    assert view["status"] == "succeeded"
    # The refused resume (a rejected update) left no event in the history.
    history = await dev_env.client.get_workflow_handle(f"run-{run_id}").fetch_history()
    accepted = [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
                for e in history.events
                if e.HasField("workflow_execution_update_accepted_event_attributes")]  # fmt: skip
    assert accepted == ["pause_run", "resume_run"]
    evidence = (await api.get(f"/runs/{run_id}/evidence", headers=user)).json()
    [pause] = evidence["decisions"]["pauses"]
    assert (pause["resolution"], pause["resolved_by"]) == (
        "RESUMED",
        f"apikey:{keys.ids['TENANT_ADMIN']}",
    )
    ended = await api.post(f"/runs/{run_id}/pause", headers=keys.admin)
    assert ended.status_code == 409 and "has ended" in ended.json()["detail"]


async def test_stop_cancels_the_run(dev_env, api, app_settings, sessions, task_queue, tenant_keys):
    keys = tenant_keys()
    with local_server() as server:
        allow_egress(sessions, keys.tenant, server.url)
        slow = {"skill": "http", "input": {"url": f"{server.url}/slow/1.5"}}
        async with running_worker(dev_env.client, app_settings, sessions, task_queue):
            started = await api.post(
                "/runs", json={"steps": [slow, *echo_steps(1)]}, headers=keys.admin
            )
            run_id = started.json()["run_id"]
            await in_slow_step(server)
            stopped = await api.post(
                f"/runs/{run_id}/stop", json={"reason": "wrong input"}, headers=keys.admin
            )
            assert stopped.status_code == 202, stopped.text
            assert stopped.json()["state"]["stop_requested"] is True
            again = await api.post(f"/runs/{run_id}/stop", headers=keys.admin)
            assert again.status_code == 202  # a repeated stop changes nothing
            view = await wait_for(api, f"/runs/{run_id}", keys.admin, finished)
    assert (view["phase"], view["status"]) == ("FAILED", "cancelled")
    assert "wrong input" in view["failure_reason"]
    evidence = (await api.get(f"/runs/{run_id}/evidence", headers=keys.admin)).json()
    assert [c["kind"] for c in evidence["decisions"]["control"]] == ["STOPPED"]


async def test_a_run_no_worker_has_run_yet_gets_the_signal_and_a_malformed_pause_is_422(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys()
    run_id = (await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)).json()[
        "run_id"
    ]  # no worker polls this test's task queue yet
    bad = await api.post(f"/runs/{run_id}/pause", json={"reason": "BORED"}, headers=keys.admin)
    assert bad.status_code == 422
    paused = await api.post(f"/runs/{run_id}/pause", headers=keys.admin)
    assert paused.status_code == 202, paused.text
    assert (paused.json()["delivered"], paused.json()["state"]) == ("signal", None)
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        view = await wait_for(api, f"/runs/{run_id}", keys.admin, lambda v: v["pause"])
        assert view["status"] == "paused"  # applied at its first step
        resumed = await api.post(f"/runs/{run_id}/resume", headers=keys.admin)
        assert resumed.json()["delivered"] == "update" and resumed.json()["state"]["pause"] is None
        await wait_for(api, f"/runs/{run_id}", keys.admin, finished)


MALFORMED_RUNS = [
    ({}, "body.steps"),
    ({"steps": []}, "body.steps"),
    ({"steps": [{"skill": "nope"}]}, "body.steps.0"),
    ({"steps": [{"skill": "echo", "input": {}}]}, "body.steps.0"),
    ({"steps": echo_steps(1), "tenant_id": "someone-else"}, "body.tenant_id"),
    ({"steps": echo_steps(1), "budget": "-1"}, "body.budget"),
    ({"steps": echo_steps(1), "run_id": "bad id!"}, "body.run_id"),
    ({"steps": echo_steps(1), "options": {"pause_sla_seconds": 0}}, "body.options"),
    ({"steps": echo_steps(1), "options": {"run_timeout_seconds": 10**12}}, "body.options"),
    ({"steps": echo_steps(1), "budget": "1e20"}, "body.budget"),
    ({"steps": [{"skill": "echo", "input": {"text": "a\x00b"}}]}, "body.steps.0"),
]


async def test_nul_in_a_step_input_names_the_input_field(api, tenant_keys):
    keys = tenant_keys()
    body = {"steps": [{"skill": "echo", "input": {"text": "a\x00b"}}]}
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert response.status_code == 422
    assert "input.text: NUL characters are not allowed" in response.json()["error"]


@pytest.mark.parametrize(("body", "field"), MALFORMED_RUNS)
async def test_malformed_run_is_422_naming_the_field_and_starts_nothing(
    dev_env, api, sessions, tenant_keys, body, field
):
    keys = tenant_keys()
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]
    assert any(".".join(map(str, d["loc"])).startswith(field) for d in response.json()["detail"])
    assert count_where(sessions, Run.tenant_id == keys.tenant) == 0
    started = [w async for w in dev_env.client.list_workflows(f'TenantId="{keys.tenant}"')]
    assert started == []


async def test_other_malformed_requests_are_422_and_write_nothing(api, sessions, tenant_keys):
    keys = tenant_keys()
    run_id = (await api.post("/runs", json={"steps": echo_steps(1)}, headers=keys.admin)).json()[
        "run_id"
    ]
    ledger_before = count_where(sessions, AuditLedgerEntry.tenant_id == keys.tenant)
    cases = [
        ("post", f"/runs/{run_id}/pause", {"reason": "BECAUSE"}, "body.reason"),
        ("post", f"/runs/{run_id}/stop", {"reason": "x" * 501}, "body.reason"),
        ("post", f"/runs/{run_id}/stop", {"why": "x"}, "body.why"),
        ("get", "/runs/bad id!/evidence", None, "path.run_id"),
        ("get", "/alerts?limit=0", None, "query.limit"),
        ("post", "/candidates", {"candidate_id": "c-1"}, "body.correlationRuleId"),
        ("post", "/candidates/c-1/promote", {"authority_type": "ROOT"}, "body.authority_type"),
        ("post", f"/runs/{run_id}/stop", {"reason": "NUL \x00"}, "body.reason"),
        ("post", "/candidates", candidate(service="a\x00"), "body.service"),
        ("post", "/candidates", candidate(createdAt="0001-01-01T00:00:00+05:00"), "body.createdAt"),
    ]
    for method, path, body, field in cases:
        response = await api.request(method, path, json=body, headers=keys.admin)
        assert response.status_code == 422, (path, response.text)
        assert field in response.json()["error"], (path, response.json()["error"])
    not_json = await api.post(
        "/runs", content=b"{not json", headers={**keys.admin, "content-type": "application/json"}
    )
    assert not_json.status_code == 422 and "body" in not_json.json()["error"]
    assert count_where(sessions, AuditLedgerEntry.tenant_id == keys.tenant) == ledger_before
    assert count_where(sessions, Candidate.tenant_id == keys.tenant) == 0


def candidate(tenant_keys_tenant: str | None = None, **over) -> dict:
    body = {
        "candidate_id": f"c-{uuid.uuid4().hex[:12]}",
        "correlationRuleId": "rule-latency",
        "correlationRuleVersion": "2",
        "signalCount": 1,
        "severity": "HIGH",
        "service": "checkout",
        "metadata": {"policyId": "default", "policyVersion": "1"},
    }
    if tenant_keys_tenant:
        body["tenantId"] = tenant_keys_tenant
    return body | over


async def test_candidates_submit_and_promote_within_the_tenant(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys
):
    keys = tenant_keys("TENANT_ADMIN", "TENANT_USER")
    stranger = tenant_keys()
    foreign = await api.post("/candidates", json=candidate(stranger.tenant), headers=keys.admin)
    assert foreign.status_code == 403 and "tenant_id" in foreign.json()["detail"]
    assert count_where(sessions, Candidate.tenant_id == stranger.tenant) == 0
    body = candidate()
    async with running_worker(dev_env.client, app_settings, sessions, task_queue):
        submitted = await api.post("/candidates", json=body, headers=keys.admin)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["duplicate"] is False
        workflow = RunHandle(dev_env.client.get_workflow_handle(submitted.json()["workflow_id"]))
        assert (await workflow.result())["decision"] == "DEFER"  # one signal only

        path = f"/candidates/{body['candidate_id']}/promote"
        assert (await api.post(path, headers=stranger.admin)).status_code == 404
        by_user = await api.post(path, headers=keys.headers["TENANT_USER"])
        assert by_user.status_code == 403 and "may not promote" in by_user.json()["detail"]
        promoted = await api.post(path, json={"justification": "confirmed"}, headers=keys.admin)
        assert promoted.status_code == 200, promoted.text
        result = promoted.json()
        assert result["decision"] == "PROMOTE" and result["incident_id"]
        assert result["authority"]["authority_id"] == f"apikey:{keys.ids['TENANT_ADMIN']}"
        again = await api.post(path, headers=keys.admin)
        assert again.status_code == 409 and "not DEFERRED" in again.json()["detail"]
    unknown = await api.post("/candidates/c-unknown/promote", headers=keys.admin)
    assert unknown.status_code == 404


async def test_alerts_are_the_tenants_own(api, sessions, tenant_keys):
    mine, theirs = tenant_keys(), tenant_keys()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for tenant, title in ((mine.tenant, "mine"), (theirs.tenant, "theirs")):
            session.add(
                Alert(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant,
                    alert_type="STALE_RUN",
                    severity="HIGH",
                    domain="orchestrator",
                    run_id=None,
                    dedup_key=f"{tenant}/stale",
                    title=title,
                    details={},
                    source_event_id=str(uuid.uuid4()),
                    created_at=now,
                )
            )
    response = await api.get("/alerts", params={"limit": 10}, headers=mine.admin)
    assert response.status_code == 200
    assert [a["title"] for a in response.json()] == ["mine"]


async def test_a_reference_to_a_later_step_is_422_naming_it_and_starts_nothing(
    dev_env, api, sessions, tenant_keys
):
    keys = tenant_keys()
    body = {"steps": [{"skill": "echo", "input": {"text": {"$ref": "steps.b.output.text"}}},
                      {"id": "b", "skill": "echo", "input": {"text": "x"}}]}  # fmt: skip
    response = await api.post("/runs", json=body, headers=keys.admin)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "invalid run: steps.0.input.text: reference 'steps.b.output.text' names a later step "
        "(step 1); only earlier steps' outputs can be used")  # fmt: skip
    assert count_where(sessions, Run.tenant_id == keys.tenant) == 0
    started = [w async for w in dev_env.client.list_workflows(f'TenantId="{keys.tenant}"')]
    assert started == []
