"""Pause / resume / stop and mid-execution policy checks, on the time-skipping server.

The real 1-hour default SLA is used: the server skips the time, nobody waits for it.
Live state changes mid-run (a rule disabled, a tenant suspended, a stop requested)
happen while a step calls a slow local endpoint.
"""

import asyncio
from decimal import Decimal

import pytest

from db.models import (
    AuditLedgerEntry,
    Incident,
    OutboxEvent,
    PauseRecord,
    PolicyCheck,
    PreventionRecord,
    Run,
    StopRequest,
    TraceStep,
)
from domain.models import RunStatusView
from runtime.chat_completions import chat_server
from services import control, rules, tenants
from services.ledger import utcnow
from tests.helpers import (
    RunHandle,
    add_rule,
    count,
    echo_steps,
    markers,
    new_tenant,
    rows,
    running_worker,
    start_run,
)
from tests.local_servers import local_server
from tests.security_servers import allow_egress
from workflows.patches import FEWER_LOCAL_ACTIVITIES

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-admin", "authority": "TENANT_ADMIN"}
USER = {"id": "ops-user", "authority": "TENANT_USER"}


def manual_pause(actor=ADMIN, reason="MANUAL_PAUSE"):
    return {"reason": reason, "actor": actor}


async def start_paused(env, task_queue, run_id, payload, pause=None):
    return RunHandle(await env.client.start_workflow(
        "RunWorkflow", payload, id=f"run-{run_id}", task_queue=task_queue,
        start_signal="pause", start_signal_args=[pause or manual_pause()],
    ))  # fmt: skip


async def wait_status(handle, status, tries=200):
    for _ in range(tries):
        view = await handle.query("status", result_type=RunStatusView)
        if view.status == status:
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {status}: {view}")


def audit_types(sessions, run_id):
    entries = sorted(rows(sessions, AuditLedgerEntry), key=lambda e: e.created_at)
    return [e.event_type for e in entries if (e.after_state or {}).get("run_id") == run_id]


async def test_pause_resume_completes(ts_env, ts_settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_paused(ts_env, task_queue, run_id,
                                    {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        view = await wait_status(handle, "paused")
        assert view.pause.reason == "MANUAL_PAUSE" and "TENANT_USER" in view.pause.resumable_by
        assert rows(sessions, Run, id=run_id)[0].status == "paused"
        await handle.signal("resume", {"actor": USER})
        result = await handle.result()
    assert result["status"] == "succeeded"
    pause = rows(sessions, PauseRecord, run_id=run_id)[0]
    assert (pause.resolution, pause.resolved_by) == ("RESUMED", "ops-user")
    assert "RUN_PAUSED" in audit_types(sessions, run_id)


async def test_unauthorized_resume_is_refused_and_audited(ts_env, ts_settings, sessions, task_queue,
                                                          run_id):  # fmt: skip
    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_paused(ts_env, task_queue, run_id,
                                    {"tenant_id": tenant, "steps": echo_steps(1)},
                                    manual_pause(reason="APPROVAL_REQUIRED"))  # fmt: skip
        await wait_status(handle, "paused")
        await handle.signal("resume", {"actor": USER})
        await handle.signal("resume", {"bogus": True})  # malformed: refused, audited
        for _ in range(100):
            if audit_types(sessions, run_id).count("SIGNAL_REFUSED") == 2:
                break
            await asyncio.sleep(0.05)
        view = await handle.query("status", result_type=RunStatusView)
        assert view.status == "paused"
        await handle.signal("resume", {"actor": ADMIN})
        result = await handle.result()
    assert result["status"] == "succeeded"
    refusals = [e.after_state["reason"] for e in rows(sessions, AuditLedgerEntry,
                                                      event_type="SIGNAL_REFUSED")
                if e.after_state["run_id"] == run_id]  # fmt: skip
    assert any("TENANT_USER may not resume a APPROVAL_REQUIRED pause" in r for r in refusals)
    assert any(r.startswith("malformed: actor") for r in refusals)


async def test_stop_while_paused(ts_env, ts_settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_paused(ts_env, task_queue, run_id,
                                    {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        await wait_status(handle, "paused")
        await handle.signal("stop", {"actor": ADMIN, "reason": "not needed"})
        result = await handle.result()
    assert (result["phase"], result["status"]) == ("FAILED", "cancelled")
    assert "not needed" in result["reason"]
    assert rows(sessions, PauseRecord, run_id=run_id)[0].resolution == "STOPPED"
    assert count(sessions, TraceStep, run_id=run_id) == 0


@pytest.mark.parametrize("behavior", ["TERMINATE", "CONTINUE", "ESCALATE"])
async def test_pause_sla_expiry_with_default_one_hour(ts_env, ts_settings, sessions, task_queue,
                                                      run_id, behavior):  # fmt: skip
    assert ts_settings.pause_sla_seconds == 3600  # the real default, skipped not waited
    # The tenant decides what an expired pause does (a run's option may only tighten it).
    tenant = new_tenant(sessions, governance={"pause_timeout_behavior": behavior})
    payload = {"tenant_id": tenant, "steps": echo_steps(1)}
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_paused(ts_env, task_queue, run_id, payload)
        if behavior == "ESCALATE":
            for _ in range(200):
                await ts_env.sleep(600)
                if rows(sessions, PauseRecord, run_id=run_id)[0].escalated_at:
                    break
            view = await handle.query("status", result_type=RunStatusView)
            assert view.status == "paused" and view.pause.escalated
            await handle.signal("resume", {"actor": ADMIN})
        result = await handle.result()
    pause = rows(sessions, PauseRecord, run_id=run_id)[0]
    assert pause.warned_at is not None
    warnings = rows(sessions, OutboxEvent, run_id=run_id, topic="run.pause_expiring")
    assert len(warnings) == 1
    incidents = rows(sessions, Incident, source_run_id=run_id)
    if behavior == "TERMINATE":
        assert (result["phase"], result["status"]) == ("FAILED", "failed")
        assert pause.resolution == "TIMED_OUT" and "SLA" in result["reason"]
        assert [i.category for i in incidents] == ["RUN_FAILURE"]
    elif behavior == "CONTINUE":
        assert result["status"] == "succeeded" and pause.resolution == "AUTO_RESUMED"
    else:
        assert result["status"] == "succeeded" and pause.resolution == "RESUMED"
        assert [i.category for i in incidents] == ["PAUSE_ESCALATION"]
        assert pause.warned_at <= pause.escalated_at
        # published when it was opened (the run still paused), for the sinks to hear of it
        published = rows(sessions, OutboxEvent, run_id=run_id, topic="incident.created")
        assert [e.payload["incident_id"] for e in published] == [incidents[0].id]
        assert published[0].created_at <= pause.resolved_at


async def test_a_call_whose_reservation_does_not_fit_the_budget_is_prevented(
    ts_env, ts_settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions, budget=Decimal("0.001"))
    with chat_server(usage=(1000, 500)) as server:
        llm_settings = ts_settings.model_copy(update={"llm_base_url": server.base_url})
        steps = [{"skill": "llm", "input": {"prompt": "q0"}}]
        steps += [{"skill": "llm", "input": {"prompt": f"q{i}", "max_tokens": 500}}
                  for i in range(1, 6)]  # fmt: skip
        async with running_worker(ts_env.client, llm_settings, sessions, task_queue):
            handle = await start_run(ts_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            result = await handle.result()
        # A call reserves its worst case before it runs: (2 + 8) prompt tokens at 0.00015/1k
        # and its completion tokens at 0.0006/1k (the default 1024 when it names none, sent
        # as max_tokens): 0.0006159, then 0.0003015; each costs 0.00045 (its usage). The
        # third would not fit 0.001: never sent.
        assert [body["max_tokens"] for body in server.bodies()] == [1024, 500]
    assert (result.phase, result.status) == ("FAILED", "failed_policy")
    assert result.cost == Decimal("0.0009") and result.steps_done == 2  # never over budget
    assert "prevented by the budget: step 2 (llm) would bring the cost to 0.0012015" in (
        result.reason)  # fmt: skip
    (judged,) = [r for r in rows(sessions, PreventionRecord, run_id=run_id) if r.step_index == 2]
    assert (judged.rule_name, judged.outcome, judged.evaluation_id) == ("budget", "PREVENTED", None)
    assert [i.category for i in rows(sessions, Incident, source_run_id=run_id)] == ["BUDGET_BREACH"]
    (entry,) = rows(sessions, AuditLedgerEntry, event_type="STEP_PREVENTED", entity_id=run_id)
    assert entry.after_state["step_index"] == 2
    assert count(sessions, TraceStep, run_id=run_id) == 2  # the prevented step left no step


async def change_during_slow_step(env, settings, sessions, task_queue, run_id, tenant, change,
                                  then=None):  # fmt: skip
    """A slow step, then two echo steps; ``change(tenant, run_id)`` happens during the slow one.

    Returns the status view once the run is paused or ended, and ``await then(handle)``.
    """
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "http", "input": {"url": f"{server.url}/slow/1.5"}}, *echo_steps(2)]
        async with running_worker(env.client, settings, sessions, task_queue):
            handle = await start_run(env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            for _ in range(100):
                if "/slow/1.5" in server.hits:
                    break
                await asyncio.sleep(0.05)
            change(tenant, run_id)
            view = await _result_or_paused(handle)
            return view, (await then(handle) if then else None)


async def _result_or_paused(handle):
    for _ in range(200):
        view = await handle.query("status", result_type=RunStatusView)
        if view.status == "paused" or view.phase in ("COMPLETED", "FAILED"):
            return view
        await asyncio.sleep(0.05)
    return view


@pytest.mark.parametrize(
    ("change", "expected_status", "violation"),
    [
        (lambda s, t, r: tenants.update_tenant(s, t, status="SUSPENDED"), "failed_policy",
         "TENANT_SUSPENDED"),
        (lambda s, t, r: control.request_stop(s, r, "ops said so"), "cancelled", "MANUAL_STOP"),
    ],
)  # fmt: skip
async def test_terminate_decisions(ts_env, ts_settings, sessions, task_queue, run_id, change,
                                   expected_status, violation):  # fmt: skip
    tenant = new_tenant(sessions)
    view, _ = await change_during_slow_step(
        ts_env, ts_settings, sessions, task_queue, run_id, tenant,
        lambda t, r: change(sessions, t, r),
    )  # fmt: skip
    assert (view.phase, view.status) == ("FAILED", expected_status)
    assert violation in view.failure_reason
    last = max(rows(sessions, PolicyCheck, run_id=run_id), key=lambda c: c.step_index)
    assert last.decision == "TERMINATE" and violation in last.violations
    assert count(sessions, TraceStep, run_id=run_id) == 1


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        (lambda s, t: rules.update_rule(s, t, "watch", enabled=False), "POLICY_DISABLED"),
        (lambda s, t: tenants.update_tenant(s, t, budget="9"), "LIMIT_CHANGED"),
    ],
)
async def test_pause_decisions_then_admin_resumes(ts_env, ts_settings, sessions, task_queue, run_id,
                                                  change, violation):  # fmt: skip
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "watch", "SKILL_USED", {"skill": "llm"}, "WARNED")

    async def resume(handle):
        await handle.signal("resume", {"actor": ADMIN})
        return await handle.result()

    view, result = await change_during_slow_step(
        ts_env, ts_settings, sessions, task_queue, run_id, tenant,
        lambda t, r: change(sessions, t), then=resume,
    )  # fmt: skip
    assert view.status == "paused" and view.pause.reason == "POLICY_CHANGE"
    assert view.pause.resumable_by == ["TENANT_ADMIN", "FOUNDER_ONLY"]
    pause_check = [c for c in rows(sessions, PolicyCheck, run_id=run_id) if c.decision == "PAUSE"]
    assert len(pause_check) == 1 and pause_check[0].violations == [violation]
    assert result.status == "succeeded"  # the new policy state became the baseline
    decisions = [c.decision for c in rows(sessions, PolicyCheck, run_id=run_id)]
    assert decisions.count("PAUSE") == 1


async def test_check_disabled_skips(ts_env, ts_settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions, governance={"policy_check_enabled": False})  # the tenant's
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_run(ts_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(3)})  # fmt: skip
        result = await handle.result()
    assert result.status == "succeeded"
    assert count(sessions, PolicyCheck, run_id=run_id) == 0


async def test_continue_records_each_check(ts_env, ts_settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_run(ts_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(3)})  # fmt: skip
        await handle.result()
    checks = rows(sessions, PolicyCheck, run_id=run_id)
    assert sorted(c.step_index for c in checks) == [0, 1, 2]
    assert {c.decision for c in checks} == {"CONTINUE"}


async def test_the_authorization_is_the_check_before_step_0(ts_env, ts_settings, sessions,
                                                           task_queue, run_id):  # fmt: skip
    # runs.open records the check before step 0 from what it read to authorize the run;
    # control.check_policy runs for the later steps only.
    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_run(ts_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(3)})  # fmt: skip
        await handle.result()
        found = await markers(handle)
    assert ("core_patch", FEWER_LOCAL_ACTIVITIES) in found
    local = [name for kind, name in found if kind == "core_local_activity"]
    assert local == [
        "runs.open",  # + AUTHORIZED + the check before step 0
        "traces.start",  # + EXECUTING
        "control.check_policy",  # before step 1
        "control.check_policy",  # before step 2
        "policies.evaluate",  # + GOVERNANCE_CHECK
        "traces.complete",  # + the run's own reconciliation
        "runs.finalize",  # + FINALIZING
    ]
    [first] = [c for c in rows(sessions, PolicyCheck, run_id=run_id) if c.step_index == 0]
    assert (first.decision, first.violations, first.cost_so_far) == ("CONTINUE", [], 0)


async def test_a_stop_filed_before_the_run_opened_is_met_by_the_check_before_step_0(
    ts_env, ts_settings, sessions, task_queue, run_id
):
    # Only a CONTINUE is answered at open: anything else is left to control.check_policy.
    tenant = new_tenant(sessions)
    with sessions.begin() as session:
        session.add(StopRequest(run_id=run_id, tenant_id=tenant, requested_by="ops",
                                reason="filed early", requested_at=utcnow()))  # fmt: skip
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_run(ts_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(2)})  # fmt: skip
        result = await handle.result()
        found = await markers(handle)
    assert (result.status, result.steps_done) == ("cancelled", 0)
    assert "terminated by policy check before step 0: MANUAL_STOP" in result.reason
    assert ("core_local_activity", "control.check_policy") in found
    [check] = rows(sessions, PolicyCheck, run_id=run_id)
    assert (check.step_index, check.decision, check.violations) == (0, "TERMINATE", ["MANUAL_STOP"])


async def test_signals_after_the_run_ended_are_refused_cleanly(ts_env, ts_settings, sessions,
                                                               task_queue, run_id):  # fmt: skip
    from clients.runs import RunRequestError, signal_run

    tenant = new_tenant(sessions)
    async with running_worker(ts_env.client, ts_settings, sessions, task_queue):
        handle = await start_run(ts_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": echo_steps(1)})  # fmt: skip
        await handle.result()
        with pytest.raises(RunRequestError, match="has ended"):
            await signal_run(ts_env.client, run_id, "pause", manual_pause())
        with pytest.raises(RunRequestError, match="unknown run"):
            await signal_run(ts_env.client, "no-such-run", "resume", {"actor": ADMIN})
        with pytest.raises(RunRequestError, match="invalid resume: actor"):
            await signal_run(ts_env.client, run_id, "resume", {})
