"""Governance that prevents (real dev server, both databases): a run's options may only
tighten its tenant's settings; rules and the budget are judged before every step, and a
step they stop never runs."""

from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError

from db.models import AuditLedgerEntry, Incident, PreventionRecord, Run, TraceStep
from tests.helpers import add_rule, count, echo_steps, new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

TEMPLATE = {"skill": "template", "input": {"template": "hello $who", "variables": {"who": "x"}}}


async def test_a_run_option_cannot_switch_off_the_budget_halt(
    dev_env, settings, sessions, task_queue, run_id
):
    """What was seen: 12 echo steps with policy checks switched off by the run's options
    spent 6x a 0.0002 budget. Now that option is refused at open (nothing written); and even
    with the tenant's own checks off, the budget stops the step that would not fit."""
    tenant = new_tenant(sessions, budget=Decimal("0.0002"))
    loose = {"tenant_id": tenant, "steps": echo_steps(12),
             "options": {"policy_check_enabled": False}}  # fmt: skip
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id, loose)
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause = failed.value.cause
        assert getattr(cause, "type", None) == "LooseningOptionRefused", cause
        assert cause.non_retryable
        assert ("option policy_check_enabled=false loosens the tenant's setting "
                "policy_check_enabled=true") in str(cause)  # fmt: skip
        assert count(sessions, Run, id=run_id) == 0  # nothing written
        assert count(sessions, AuditLedgerEntry, tenant_id=tenant) == 0

        checks_off = new_tenant(sessions, budget=Decimal("0.0002"),
                                governance={"policy_check_enabled": False})  # fmt: skip
        second = f"{run_id}-b"
        handle = await start_run(dev_env.client, task_queue, second,
                                 {"tenant_id": checks_off, "steps": echo_steps(12)})  # fmt: skip
        result = await handle.result()
    assert (result.status, result.steps_done, result.cost) == (
        "failed_policy",
        2,
        Decimal("0.0002"),
    )
    assert "prevented by the budget: step 2 (echo)" in result.reason
    assert count(sessions, TraceStep, run_id=second) == 2


async def test_a_blocked_skill_never_runs(dev_env, settings, sessions, task_queue, run_id):
    """What was seen: a SKILL_USED rule BLOCKED on template, and `echo, template, echo` ran
    all three. Now the template step is stopped before it runs."""
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    steps = [*echo_steps(1), TEMPLATE, *echo_steps(1)]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        result = await handle.result()
        # The workflow ends as failed (the Web UI's badge, its failure counts, Temporal's
        # metrics), with the run's result in the failure's details.
        with pytest.raises(WorkflowFailureError) as failed:
            await handle._handle.result()
        assert (failed.value.cause.type, failed.value.cause.non_retryable) == (
            "RunFailedPolicy", True)  # fmt: skip
        assert failed.value.cause.details[0]["status"] == "failed_policy"
        assert (await handle.describe()).status.name == "FAILED"
    assert (result.phase, result.status, result.steps_done) == ("FAILED", "failed_policy", 1)
    assert result.reason == ("prevented by rule 'no-template' (BLOCKED): step 1 (template): "
                             "skill 'template' is used")  # fmt: skip
    assert [s.skill for s in rows(sessions, TraceStep, run_id=run_id)] == ["echo"]
    (judged,) = [r for r in rows(sessions, PreventionRecord, run_id=run_id) if r.step_index == 1]
    assert (judged.rule_name, judged.outcome, judged.evaluation_id) == ("no-template", "BLOCKED",
                                                                        None)  # fmt: skip
    (incident,) = rows(sessions, Incident, source_run_id=run_id)
    assert incident.category == "POLICY_VIOLATION"
    (entry,) = rows(sessions, AuditLedgerEntry, event_type="STEP_PREVENTED", entity_id=run_id)
    assert (entry.after_state["step_index"], entry.after_state["rule_name"]) == (1, "no-template")


MATCHING_STEP_1 = {  # each rule matches the second step (template) of echo, template, echo
    "SKILL_USED": {"skill": "template"},
    "MAX_STEPS": {"max": 1},
    "MAX_COST": {"max": "0.00015"},  # projected before step 1: 0.0001 + 0.0001
}


@pytest.mark.parametrize("kind", list(MATCHING_STEP_1))
@pytest.mark.parametrize("outcome", ["BLOCKED", "PREVENTED", "WARNED"])
async def test_each_rule_kind_and_outcome_is_judged_before_the_step(
    dev_env, settings, sessions, task_queue, run_id, kind, outcome
):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "the-rule", kind, MATCHING_STEP_1[kind], outcome)
    steps = [*echo_steps(1), TEMPLATE, *echo_steps(1)]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        result = await handle.result()
    judged = sorted((r.step_index, r.outcome) for r in rows(sessions, PreventionRecord,
                                                             run_id=run_id)
                    if r.step_index is not None)  # fmt: skip
    if outcome == "WARNED":  # it runs, and each warning is recorded
        assert result.steps_done == 3
        assert (1, "WARNED") in judged and all(o == "WARNED" for _, o in judged)
        assert count(sessions, TraceStep, run_id=run_id) == 3
    else:
        assert (result.status, result.steps_done) == ("failed_policy", 1)
        assert judged == [(1, outcome)]
        assert count(sessions, TraceStep, run_id=run_id) == 1  # step 1 never ran


async def test_the_tenant_may_let_an_authority_loosen_and_a_submitter_may_tighten(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions, governance={"loosen": {"policy_check_enabled": ["TENANT_ADMIN"]}})
    admin = {"id": "ops-1", "authority": "TENANT_ADMIN"}
    user = {"id": "u-1", "authority": "TENANT_USER"}
    off = {"policy_check_enabled": False}
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(
            dev_env.client,
            task_queue,
            run_id,
            {"tenant_id": tenant, "steps": echo_steps(2), "options": off, "submitted_by": admin},
        )
        assert (await handle.result()).status == "succeeded"
        refused = await start_run(
            dev_env.client,
            task_queue,
            f"{run_id}-u",
            {"tenant_id": tenant, "steps": echo_steps(2), "options": off, "submitted_by": user},
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await refused.result()
        assert "runs submitted as TENANT_USER" in str(failed.value.cause)
        strict = await start_run(
            dev_env.client,
            task_queue,
            f"{run_id}-s",
            {
                "tenant_id": tenant,
                "steps": echo_steps(1),
                "options": {"observability_mode": "STRICT", "run_timeout_seconds": 600},
            },
        )
        assert (await strict.result()).status == "succeeded"
    (row,) = rows(sessions, Run, id=run_id)
    assert row.config["policy_check_enabled"] is False
    (tight,) = rows(sessions, Run, id=f"{run_id}-s")
    assert (tight.config["observability_mode"], tight.config["run_timeout_seconds"]) == (
        "STRICT", 600)  # fmt: skip
    assert count(sessions, Run, id=f"{run_id}-u") == 0


def test_cli_tenant_governance_is_audited_and_refuses_bad_settings(
    settings, sessions, monkeypatch, capsys
):
    from cli.main import main
    from services.tenants import get_governance

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    tenant = new_tenant(sessions)

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(["tenant", "governance", tenant, *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    for argv, error in (
        (["--set", "budget_halt=false"], "governance: budget_halt: Extra inputs are not permitted"),
        (
            ["--set", "pause_sla_seconds=0"],
            "governance: pause_sla_seconds: Input should be greater",
        ),
        (["--loosen", "budget=TENANT_ADMIN"], "unknown option 'budget'"),
        (["--loosen", "run_timeout_seconds=ROOT"], "loosen.run_timeout_seconds.0"),
        (["--set", "pause_sla_seconds"], "--set: expected OPTION=VALUE"),
    ):
        code, _, err = cli(*argv)
        assert code == 1 and error in err, (argv, err)
    assert rows(sessions, AuditLedgerEntry, event_type="TENANT_GOVERNANCE_UPDATED",
                tenant_id=tenant) == []  # fmt: skip
    assert get_governance(sessions, tenant).values() == {}

    code, out, _ = cli("--set", "policy_check_enabled=false",
                       "--set", "pause_timeout_behavior=ESCALATE",
                       "--loosen", "run_timeout_seconds=TENANT_ADMIN")  # fmt: skip
    assert code == 0 and "policy_check_enabled = false" in out
    assert "run_timeout_seconds may be loosened by TENANT_ADMIN" in out
    code, out, _ = cli("--unset", "policy_check_enabled", "--loosen", "run_timeout_seconds=none")
    assert code == 0 and "no option may be loosened by a run" in out
    stored = get_governance(sessions, tenant)
    assert stored.values() == {"pause_timeout_behavior": "ESCALATE"} and stored.loosen == {}
    entries = rows(sessions, AuditLedgerEntry, event_type="TENANT_GOVERNANCE_UPDATED",
                   tenant_id=tenant)  # fmt: skip
    assert len(entries) == 2
    assert [e.after_state["governance"]["pause_timeout_behavior"] for e in entries] == [
        "ESCALATE", "ESCALATE"]  # fmt: skip


LOOSER = {  # each looser than the worker's defaults (tests/conftest.py settings)
    "observability_mode": "PERMISSIVE",
    "policy_check_enabled": False,
    "policy_check_interval_seconds": 3600,
    "policy_check_min_steps": 10,
    "pause_sla_seconds": 7200,
    "pause_notify_before_seconds": 0,
    "pause_timeout_behavior": "CONTINUE",
    "run_timeout_seconds": 86400,
}
TIGHTER = {
    "observability_mode": "STRICT",
    "policy_check_enabled": True,
    "policy_check_interval_seconds": 0,
    "policy_check_min_steps": 1,
    "pause_sla_seconds": 60,
    "pause_notify_before_seconds": 600,
    "pause_timeout_behavior": "TERMINATE",
    "run_timeout_seconds": 600,
    "budget_warning_percent": 90,
}


@pytest.mark.parametrize("option", sorted(TIGHTER))
async def test_every_option_tightens_and_none_loosens_without_leave(
    dev_env, settings, sessions, task_queue, run_id, option
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        payload = {
            "tenant_id": tenant,
            "steps": echo_steps(1),
            "options": {option: TIGHTER[option]},
        }
        tight = await start_run(dev_env.client, task_queue, run_id, payload)
        assert (await tight.result()).status == "succeeded"
        if option not in LOOSER:  # budget_warning_percent: unset is the loosest there is
            return
        loose_id = f"{run_id}-loose"
        loose = await start_run(dev_env.client, task_queue, loose_id, {
            "tenant_id": tenant, "steps": echo_steps(1), "options": {option: LOOSER[option]},
            "submitted_by": {"id": "u-1", "authority": "TENANT_USER"}})  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failed:
            await loose.result()
    assert failed.value.cause.type == "LooseningOptionRefused"
    assert failed.value.cause.message.startswith(f"option {option}=")
    assert count(sessions, Run, id=loose_id) == 0
    (row,) = rows(sessions, Run, id=run_id)
    assert row.config[option] == TIGHTER[option]
