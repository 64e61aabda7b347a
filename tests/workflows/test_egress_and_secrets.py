"""Hostile-tenant cases, end to end on real servers: egress refused (the Temporal Web UI's
HTTP API, loopback, private, link-local, a name resolving to loopback, a redirect), the
tenant's allow-list, no cookie shared between steps or tenants, and secrets that reach the
server but never the history, the trace or the output — with the proof still VERIFIED."""

import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.api.history.v1 import History
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.secret_store import SecretBox
from db.models import AuditLedgerEntry, TraceStep
from db.queries.evidence import run_proof
from domain.hashchain import SECRETS_PROOF_KEY
from domain.ids import derive_id
from domain.models import RunStatusView
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from domain.secret_refs import secrets_digest
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from services.secrets import set_secret
from tests.helpers import RunHandle, new_tenant, rows, running_worker, start_run
from tests.security_servers import allow_egress, recording_server

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


USER = {"id": "ops-user", "authority": "TENANT_USER"}


async def start_paused(env, task_queue, run_id, payload):
    return RunHandle(await env.client.start_workflow(
        "RunWorkflow", payload, id=f"run-{run_id}", task_queue=task_queue,
        start_signal="pause", start_signal_args=[{"reason": "MANUAL_PAUSE", "actor": USER}],
    ))  # fmt: skip


async def wait_status(handle, status):
    for _ in range(200):
        view = await handle.query("status", result_type=RunStatusView)
        if view.status == status:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {status}: {view}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest_asyncio.fixture(scope="module")
async def ui_env():
    """A dev server with its Web UI (and so the UI's HTTP API) on a known port."""
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=list(SPEED_FLAGS),
        ui=True,
        ui_port=ui_port,
    )
    for _ in range(300):  # until the UI's own link to the frontend is up
        try:
            api = f"http://127.0.0.1:{ui_port}/api/v1/namespaces/default"
            if httpx.get(api, timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    yield env, ui_port
    await env.shutdown()


@pytest.fixture
def server():
    with recording_server() as s:
        yield s


def refusals(sessions, run_id):
    return rows(sessions, AuditLedgerEntry, event_type="EGRESS_REFUSED", entity_id=run_id)


def http_step(url, **extra):
    return {"skill": "http", "input": {"url": url, **extra}}


async def run(env, settings, sessions, task_queue, run_id, tenant, steps):
    async with running_worker(env.client, settings, sessions, task_queue):
        handle = await start_run(env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        return handle, await handle.result()


def resume_through_ui_api(ui_port: int, victim_run: str) -> dict:
    """What the probe sent: the Web UI's HTTP API signalling another tenant's run (a CSRF
    double-submit token of its own choosing passes the UI's check)."""
    data = base64.b64encode(json.dumps({"actor": USER}).encode()).decode()
    encoding = base64.b64encode(b"json/plain").decode()
    return {
        "method": "POST",
        "url": f"http://127.0.0.1:{ui_port}/api/v1/namespaces/default/workflows/"
        f"run-{victim_run}/signal/resume",
        "headers": {"Cookie": "_csrf=probe", "X-CSRF-TOKEN": "probe"},
        "json_body": {"input": {"payloads": [{"metadata": {"encoding": encoding}, "data": data}]}},
    }


async def signals(handle) -> list[str]:
    history = await handle.fetch_history()
    return [e.workflow_execution_signaled_event_attributes.signal_name for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")]  # fmt: skip


async def test_temporal_ui_api_is_protected_even_when_allow_listed(ui_env, settings, sessions,
                                                                   task_queue, run_id):  # fmt: skip
    env, ui_port = ui_env
    ui_settings = settings.model_copy(update={"temporal_ui_port": ui_port})
    victim, attacker = new_tenant(sessions), new_tenant(sessions)
    allow_egress(sessions, attacker, f"http://127.0.0.1:{ui_port}")
    victim_run = f"{run_id}-victim"
    attack = resume_through_ui_api(ui_port, victim_run)
    async with running_worker(env.client, ui_settings, sessions, task_queue):
        victim_steps = [{"skill": "echo", "input": {"text": "v"}}]
        paused = await start_paused(env, task_queue, victim_run,
                                    {"tenant_id": victim, "steps": victim_steps})  # fmt: skip
        await wait_status(paused, "paused")
        handle = await start_run(env.client, task_queue, run_id,
                                 {"tenant_id": attacker, "steps": [{"skill": "http",
                                                                    "input": attack}]})  # fmt: skip
        result = await handle.result()
        assert result.status == "failed"
        assert (f"step 0 (http) failed: egress refused: 127.0.0.1:{ui_port} is a protected "
                "endpoint of this deployment") in result.reason  # fmt: skip
        assert await signals(paused) == ["pause"]
        assert (await wait_status(paused, "paused")).pause.reason == "MANUAL_PAUSE"
        [entry] = refusals(sessions, run_id)
        assert entry.id == derive_id("audit-ledger", f"{run_id}/egress/0")
        assert entry.tenant_id == attacker and "protected endpoint" in entry.after_state["reason"]
        # The endpoint is live: the same request from outside the worker does resume it.
        direct = httpx.post(attack["url"], headers=attack["headers"], json=attack["json_body"])
        assert direct.status_code == 200, direct.text
        assert (await paused.result())["status"] == "succeeded"
    assert await signals(paused) == ["pause", "resume"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("{server}/x", "127.0.0.1 is in a loopback range (no allow-list entry for tenant "
                       "{tenant})"),
        ("http://localhost:{port}/x", "localhost resolves to "),
        ("http://10.0.0.5:9/x", "10.0.0.5 is in a private range (no allow-list entry for tenant "
                                "{tenant})"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is in a link-local range"),
    ],
)  # fmt: skip
async def test_internal_targets_are_refused_without_an_allow_list(dev_env, settings, sessions,
                                                                  task_queue, run_id, server,
                                                                  url, reason):  # fmt: skip
    tenant = new_tenant(sessions)
    url = url.format(server=server.url, port=server.port)
    _, result = await run(dev_env, settings, sessions, task_queue, run_id, tenant,
                          [http_step(url)])  # fmt: skip
    expected = "egress refused: " + reason.format(tenant=tenant)
    assert result.status == "failed" and expected in result.reason
    assert server.seen == []
    [step] = rows(sessions, TraceStep, run_id=run_id)
    assert step.status == "FAILED" and expected in step.error
    [entry] = refusals(sessions, run_id)
    assert entry.tenant_id == tenant and entry.after_state["step_index"] == 0
    assert entry.after_state["reason"] in step.error and entry.after_state["target"]["addresses"]


async def test_the_tenants_allow_list_reaches_its_server_but_not_a_redirect_elsewhere(
    dev_env, settings, sessions, task_queue, run_id, server
):
    tenant = new_tenant(sessions)
    allow_egress(sessions, tenant, server.url)
    with recording_server() as other:
        steps = [http_step(f"{server.url}/ok"),
                 http_step(f"{server.url}/redirect?to={other.url}/stolen")]  # fmt: skip
        _, result = await run(dev_env, settings, sessions, task_queue, run_id, tenant, steps)
        assert other.seen == []
    assert server.paths() == ["/ok", f"/redirect?to={other.url}/stolen"]
    assert result.status == "failed" and result.steps_done == 2
    assert "step 1 (http) failed: egress refused: 127.0.0.1 is in a loopback range" in result.reason
    trace = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [s.status for s in trace] == ["OK", "FAILED"] and trace[0].output["status"] == 200
    [entry] = refusals(sessions, run_id)
    assert entry.after_state["step_index"] == 1
    assert entry.after_state["target"]["port"] == other.port


async def test_a_cookie_set_for_one_step_reaches_no_other_step_or_tenant(
    dev_env, settings, sessions, task_queue, run_id, server
):
    tenant_a, tenant_b = new_tenant(sessions), new_tenant(sessions)
    allow_egress(sessions, tenant_a, server.url)
    allow_egress(sessions, tenant_b, server.url)
    steps_a = [http_step(f"{server.url}/set-cookie"), http_step(f"{server.url}/a-next")]
    _, a = await run(dev_env, settings, sessions, task_queue, run_id, tenant_a, steps_a)
    _, b = await run(dev_env, settings, sessions, task_queue, f"{run_id}-b", tenant_b,
                     [http_step(f"{server.url}/b")])  # fmt: skip
    assert a.status == b.status == "succeeded"
    assert server.paths() == ["/set-cookie", "/a-next", "/b"]
    assert [s.path for s in server.seen if "cookie" in s.headers] == []


async def test_secrets_reach_the_server_and_nothing_else(dev_env, settings, sessions,
                                                         task_queue, run_id, server):  # fmt: skip
    tenant = new_tenant(sessions)
    allow_egress(sessions, tenant, server.url)
    value = f"tok-{run_id}-Zq9"
    box = SecretBox.of_deployment(settings.secrets_key, settings.data_dir)
    set_secret(sessions, box, tenant, "api-token", value)
    steps = [
        http_step(f"{server.url}/echo", headers={"Authorization": "Bearer ${secret:api-token}"}),
        {"skill": "echo", "input": {"text": "said ${secret:api-token}"}},
    ]
    handle, result = await run(dev_env, settings, sessions, task_queue, run_id, tenant, steps)
    assert result.status == "succeeded"
    assert server.seen[0].headers["authorization"] == f"Bearer {value}"
    trace = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    stored = json.dumps([[s.input, s.output, s.error] for s in trace])
    assert value not in stored and "Bearer ${secret:api-token}" in trace[0].output["body"]
    assert trace[1].output == {"text": "said ${secret:api-token}"}
    assert trace[0].input[SECRETS_PROOF_KEY] == secrets_digest(run_id, 0, {"api-token": value})
    history = await handle.fetch_history()
    raw = History(events=history.events).SerializeToString()
    assert b"${secret:api-token}" in raw  # the search does see payloads
    assert value.encode() not in raw and value not in history.to_json()
    assert base64.b64encode(value.encode()) not in raw
    with sessions() as session:
        proof = run_proof(session, run_id)
    assert proof.status == "VERIFIED" and proof.step_count == 2 and proof.stored_head_matches


async def test_an_unknown_secret_fails_the_step_naming_it(dev_env, settings, sessions,
                                                          task_queue, run_id, server):  # fmt: skip
    tenant = new_tenant(sessions)
    allow_egress(sessions, tenant, server.url)
    steps = [http_step(f"{server.url}/x", headers={"X-Key": "${secret:nope}"})]
    _, result = await run(dev_env, settings, sessions, task_queue, run_id, tenant, steps)
    assert result.status == "failed"
    assert f"unknown secret 'nope' for tenant {tenant}" in result.reason
    assert server.seen == []


def starter(settings, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TEMPORAL_"))}
    env |= {"DATABASE_URL": settings.database_url, "DATA_DIR": str(settings.data_dir)}
    return subprocess.run(
        [sys.executable, "starter.py", *argv], cwd=ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_operator_cli_secrets_and_egress_end_to_end(dev_env, settings, sessions,
                                                          task_queue, run_id, server):  # fmt: skip
    tenant = new_tenant(sessions)
    value = f"cli-{run_id}-k3y"
    done = starter(settings, "secret", "set", tenant, "api-key", stdin=value + "\n")
    assert done.returncode == 0, done.stderr
    assert value not in done.stdout + done.stderr
    listed = starter(settings, "secret", "list", tenant)
    assert "api-key" in listed.stdout and value not in listed.stdout
    allowed = starter(settings, "tenant", "egress", tenant, "--allow", server.url)
    assert allowed.returncode == 0 and f"http://127.0.0.1:{server.port}" in allowed.stdout
    if settings.secrets_key is None:
        assert (settings.data_dir / "secrets.key").stat().st_mode & 0o777 == 0o600
    steps = [http_step(f"{server.url}/cli", headers={"X-Api-Key": "${secret:api-key}"})]
    _, result = await run(dev_env, settings, sessions, task_queue, run_id, tenant, steps)
    assert result.status == "succeeded" and server.seen[0].headers["x-api-key"] == value
    proof = starter(settings, "proof", run_id, "--json")
    assert proof.returncode == 0 and json.loads(proof.stdout)["status"] == "VERIFIED"
    assert starter(settings, "secret", "delete", tenant, "api-key").returncode == 0
    assert starter(settings, "tenant", "egress", tenant, "--clear").returncode == 0
    missing = starter(settings, "secret", "delete", tenant, "api-key")
    assert missing.returncode == 1 and "unknown secret 'api-key'" in missing.stderr
    audit = rows(sessions, AuditLedgerEntry, tenant_id=tenant)
    assert {"SECRET_CREATED", "SECRET_DELETED", "TENANT_EGRESS_UPDATED"} <= {
        e.event_type for e in audit}  # fmt: skip
    assert value not in json.dumps([[e.before_state, e.after_state] for e in audit])
