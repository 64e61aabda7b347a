"""PromoteCandidateWorkflow on the real dev server against both databases (gating tests)."""

import asyncio
import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.candidates import CandidateActivities
from clients.candidates import (
    CandidateLimitError,
    human_authority,
    promote_candidate,
    submit_candidate,
    validate_submission,
)
from db.models import (
    AuditLedgerEntry,
    Candidate,
    Incident,
    OrchestrationAttempt,
    OutboxEvent,
    PromotionDecisionRecord,
)
from domain.candidates import (
    ApplyDecisionRequest,
    PromotionResult,
    auto_engine_authority,
    candidate_workflow_id,
)
from domain.promotion import build_request, decide
from runtime.worker_factory import build_activities, workflow_runner
from services.candidates import snapshot, store_candidate
from services.errors import CandidateRequestError
from services.tenants import set_promotion_settings
from tests.faults import BEFORE, activities_with_faults
from tests.helpers import count, new_tenant, rows, running_worker
from workflows.promote_candidate import PromoteCandidateWorkflow

pytestmark = pytest.mark.timeout(90)


def candidate(policy: tuple[str, str] | None = ("default", "1"), **over) -> dict:
    metadata = {} if policy is None else {"policy_id": policy[0], "policy_version": policy[1]}
    return {
        "candidate_id": f"c-{uuid.uuid4().hex[:12]}",
        "tenant_id": "acme",
        "correlation_rule_id": "rule-latency",
        "correlation_rule_version": "2",
        "signal_count": 4,
        "severity": "HIGH",
        "service": "checkout",
        "metadata": metadata,
    } | over


async def submit_and_wait(dev_env, sessions, task_queue, payload) -> PromotionResult:
    _, handle = await submit_candidate(dev_env.client, sessions, task_queue, payload)
    return await handle.result()


def incidents_of(sessions, candidate_id: str) -> list[Incident]:
    return [i for i in rows(sessions, Incident) if i.details.get("candidate_id") == candidate_id]


def topics_of(sessions, candidate_id: str) -> list[str]:
    return sorted(
        e.topic
        for e in rows(sessions, OutboxEvent)
        if e.payload.get("candidate_id") == candidate_id
    )


async def replay(dev_env, workflow_id: str) -> None:
    history = await dev_env.client.get_workflow_handle(workflow_id).fetch_history()
    await Replayer(
        workflows=[PromoteCandidateWorkflow],
        workflow_runner=workflow_runner(),
        data_converter=pydantic_data_converter,
    ).replay_workflow(history)


async def test_promote_creates_one_incident_with_the_authority(
    dev_env, settings, sessions, task_queue
):
    payload = candidate(source_run_id="run-42")
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        result = await submit_and_wait(dev_env, sessions, task_queue, payload)
    assert result.decision == "PROMOTE" and result.incident_id
    auto = auto_engine_authority(cid)
    assert result.authority == auto
    [incident] = incidents_of(sessions, cid)
    assert incident.id == result.incident_id
    assert (incident.category, incident.severity, incident.source_run_id, incident.status) == (
        "CANDIDATE_PROMOTION", "HIGH", "run-42", "OPEN",
    )  # fmt: skip
    assert incident.details["decision_id"] == result.decision_id
    assert incident.details["authority"] == auto.model_dump(mode="json")
    assert incident.details["authority"]["authority_id"] == "opx-candidate-processor"
    stored = rows(sessions, Candidate, id=cid)[0]
    assert (stored.status, stored.incident_id) == ("PROMOTED", result.incident_id)
    [decision] = rows(sessions, PromotionDecisionRecord, candidate_id=cid)
    assert (decision.id, decision.authority_type, decision.session_id) == (
        result.decision_id, "AUTO_ENGINE", cid,
    )  # fmt: skip
    [attempt] = rows(sessions, OrchestrationAttempt, candidate_id=cid)
    assert (attempt.status, attempt.decision, attempt.incident_id) == (
        "success", "PROMOTE", result.incident_id,
    )  # fmt: skip
    assert attempt.expires_at - attempt.written_at == timedelta(days=90)
    assert topics_of(sessions, cid) == ["incident.created"]
    audit = rows(sessions, AuditLedgerEntry, entity_id=result.incident_id)
    assert [(a.event_type, a.actor_authority) for a in audit] == [
        ("CANDIDATE_PROMOTE", "AUTO_ENGINE")
    ]
    await replay(dev_env, candidate_workflow_id(cid))


async def test_same_candidate_and_policy_give_the_same_decision_and_incident(
    dev_env, settings, sessions, task_queue
):
    """Gating: a second execution (and a replay) yields the same ids and no new rows."""
    payload = candidate()
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        first = await submit_and_wait(dev_env, sessions, task_queue, payload)
        again = await dev_env.client.execute_workflow(
            PromoteCandidateWorkflow.run,
            {"candidate_id": cid},
            id=candidate_workflow_id(cid),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    assert (again.decision_id, again.incident_id) == (first.decision_id, first.incident_id)
    assert again == first
    stored = snapshot(rows(sessions, Candidate, id=cid)[0])
    pure = decide(build_request(stored, auto_engine_authority(cid)))
    assert (pure.decision_id, pure.incident_id) == (first.decision_id, first.incident_id)
    assert len(incidents_of(sessions, cid)) == 1
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 1
    assert count(sessions, OrchestrationAttempt, candidate_id=cid) == 1  # the second found it all
    await replay(dev_env, candidate_workflow_id(cid))
    assert len(incidents_of(sessions, cid)) == 1


async def test_duplicate_candidate_events_join_the_existing_execution(
    dev_env, settings, sessions, task_queue
):
    payload = candidate()
    cid = payload["candidate_id"]
    first, _ = await submit_candidate(dev_env.client, sessions, task_queue, payload)
    second, _ = await submit_candidate(dev_env.client, sessions, task_queue, dict(payload))
    assert not first.duplicate and second.duplicate
    assert second.run_id == first.run_id  # USE_EXISTING: no second execution
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        result = await dev_env.client.get_workflow_handle(
            candidate_workflow_id(cid), result_type=PromotionResult
        ).result()
        late, handle = await submit_candidate(dev_env.client, sessions, task_queue, payload)
        assert late.duplicate and late.run_id == first.run_id  # closed: joined, not restarted
        assert await handle.result() == result
    executions = [
        e async for e in dev_env.client.list_workflows(f'WorkflowId="{candidate_workflow_id(cid)}"')
    ]
    assert len(executions) == 1
    assert len(incidents_of(sessions, cid)) == 1
    with pytest.raises(CandidateRequestError, match="already exists with different content"):
        await submit_candidate(dev_env.client, sessions, task_queue, payload | {"signal_count": 9})


async def test_concurrent_duplicate_events_store_one_candidate_and_one_execution(
    dev_env, settings, sessions, task_queue
):
    payload = candidate()
    cid = payload["candidate_id"]
    submission = validate_submission(payload)
    stored = await asyncio.gather(
        *(asyncio.to_thread(store_candidate, sessions, submission) for _ in range(4))
    )
    assert sorted(stored) == [False, False, False, True]
    submitted = await asyncio.gather(
        *(submit_candidate(dev_env.client, sessions, task_queue, payload) for _ in range(3))
    )
    assert len({s.run_id for s, _ in submitted}) == 1
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        results = await asyncio.gather(*(handle.result() for _, handle in submitted))
    assert len({r.incident_id for r in results}) == 1
    assert len(incidents_of(sessions, cid)) == 1


async def test_activity_retries_leave_exactly_one_incident(dev_env, settings, sessions, task_queue):
    real = CandidateActivities(sessions)
    attempts: list[int] = []

    @activity.defn(name="candidates.apply_decision")
    def apply_then_crash(req: ApplyDecisionRequest) -> PromotionResult:
        result = real.apply_decision(req)  # commits
        attempts.append(activity.info().attempt)
        if activity.info().attempt < 3:
            raise RuntimeError("worker lost after the commit")
        return result

    acts = [
        a
        for a in build_activities(settings, sessions, None)
        if getattr(a, "__func__", None) is not CandidateActivities.apply_decision
    ] + [apply_then_crash]
    payload = candidate()
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue, acts):
        result = await submit_and_wait(dev_env, sessions, task_queue, payload)
    assert attempts == [1, 2, 3]
    assert [i.id for i in incidents_of(sessions, cid)] == [result.incident_id]
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 1
    assert topics_of(sessions, cid) == ["incident.created"]


async def test_defer_waits_for_a_human_and_nothing_retries_it(
    dev_env, settings, sessions, task_queue
):
    payload = candidate(signal_count=1)
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        deferred = await submit_and_wait(dev_env, sessions, task_queue, payload)
        assert (deferred.decision, deferred.incident_id) == ("DEFER", None)
        handle = dev_env.client.get_workflow_handle(candidate_workflow_id(cid))
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        history = await handle.fetch_history()
        assert not [e for e in history.events if e.HasField("timer_started_event_attributes")]
        await asyncio.sleep(2)  # a worker is running: nothing may pick the candidate up again
        assert rows(sessions, Candidate, id=cid)[0].status == "DEFERRED"
        assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 1
        assert count(sessions, OrchestrationAttempt, candidate_id=cid) == 1
        assert incidents_of(sessions, cid) == []
        assert topics_of(sessions, cid) == ["candidate.deferred"]

        promoted = await promote_candidate(
            dev_env.client, sessions, task_queue, cid, actor="alice",
            authority_type="HUMAN_OPERATOR", justification="customer impact confirmed",
        )  # fmt: skip
        with pytest.raises(CandidateRequestError, match="is PROMOTED .*not DEFERRED"):
            await promote_candidate(dev_env.client, sessions, task_queue, cid, actor="bob",
                                    authority_type="ON_CALL_SRE")  # fmt: skip
        # Straight to Temporal, past the client's check: the activity refuses a 2nd decision.
        bob = human_authority(cid, "bob", "ON_CALL_SRE", None).model_dump(mode="json")
        with pytest.raises(WorkflowFailureError) as info:
            await dev_env.client.execute_workflow(
                "PromoteCandidateWorkflow", {"authority": bob}, id=candidate_workflow_id(cid),
                task_queue=task_queue, id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            )  # fmt: skip
    assert info.value.cause.type == "CandidateAlreadyDecided"
    assert info.value.cause.message.startswith(f"candidate '{cid}' is already PROMOTED")
    assert promoted.decision == "PROMOTE" and promoted.decision_id != deferred.decision_id
    [incident] = incidents_of(sessions, cid)
    assert incident.id == promoted.incident_id
    assert incident.details["authority"] == {
        "authority_type": "HUMAN_OPERATOR",
        "authority_id": "alice",
        "session_id": cid,
        "justification": "customer impact confirmed",
    }
    assert rows(sessions, Candidate, id=cid)[0].status == "PROMOTED"
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 2


async def test_suppressed_candidate_creates_nothing_and_cannot_be_promoted(
    dev_env, settings, sessions, task_queue
):
    payload = candidate(severity="LOW")
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        result = await submit_and_wait(dev_env, sessions, task_queue, payload)
    assert (result.decision, result.incident_id) == ("SUPPRESS", None)
    assert "below the floor" in result.reason
    assert incidents_of(sessions, cid) == []
    assert topics_of(sessions, cid) == ["candidate.suppressed"]
    with pytest.raises(CandidateRequestError, match="is SUPPRESSED, not DEFERRED"):
        await promote_candidate(dev_env.client, sessions, task_queue, cid, actor="alice",
                                authority_type="HUMAN_OPERATOR")  # fmt: skip


async def test_missing_policy_id_fails_closed(dev_env, settings, sessions, task_queue):
    payload = candidate(policy=None)
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await submit_and_wait(dev_env, sessions, task_queue, payload)
        desc = await dev_env.client.get_workflow_handle(candidate_workflow_id(cid)).describe()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "MissingPolicyId"
    assert f"candidate '{cid}' has no policy id in its metadata (metadata.policy_id)" in str(cause)
    assert desc.status == WorkflowExecutionStatus.FAILED
    assert incidents_of(sessions, cid) == []
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 0
    assert rows(sessions, Candidate, id=cid)[0].status == "PENDING"
    [attempt] = rows(sessions, OrchestrationAttempt, candidate_id=cid)
    assert attempt.status == "error" and attempt.error.startswith("MissingPolicyId: ")
    assert topics_of(sessions, cid) == ["candidate.orchestration_failed"]


async def test_a_failed_local_activity_is_recorded_and_fails_closed(
    dev_env, settings, sessions, task_queue
):
    """apply_decision (a local activity) fails non-retryably before its write: the failure
    is recorded (patch record-local-activity-failures) and the workflow fails closed with
    it; nothing is promoted. Before the patch, the workflow failed with nothing recorded."""
    payload = candidate()
    cid = payload["candidate_id"]
    acts = activities_with_faults(settings, sessions, {"candidates.apply_decision": BEFORE})
    async with running_worker(dev_env.client, settings, sessions, task_queue, acts):
        with pytest.raises(WorkflowFailureError) as info:
            await submit_and_wait(dev_env, sessions, task_queue, payload)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "ActivityFailed"
    assert cause.message == "injected: candidates.apply_decision fails before its write"
    assert cause.non_retryable
    [attempt] = rows(sessions, OrchestrationAttempt, candidate_id=cid)
    assert attempt.status == "error"
    assert attempt.error == f"ActivityFailed: {cause.message}"
    assert topics_of(sessions, cid) == ["candidate.orchestration_failed"]
    assert incidents_of(sessions, cid) == []
    assert rows(sessions, Candidate, id=cid)[0].status == "PENDING"


async def test_unknown_candidate_fails_closed(dev_env, settings, sessions, task_queue):
    cid = f"nope-{uuid.uuid4().hex[:8]}"
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await dev_env.client.execute_workflow(
                "PromoteCandidateWorkflow", {}, id=candidate_workflow_id(cid), task_queue=task_queue
            )
    assert isinstance(info.value.cause, ApplicationError)
    assert info.value.cause.type == "UnknownCandidate"
    assert info.value.cause.message == f"unknown candidate '{cid}'"
    assert incidents_of(sessions, cid) == []
    assert [a.status for a in rows(sessions, OrchestrationAttempt, candidate_id=cid)] == ["error"]
    with pytest.raises(CandidateRequestError, match=f"unknown candidate '{cid}'"):
        await promote_candidate(dev_env.client, sessions, task_queue, cid, actor="alice",
                                authority_type="HUMAN_OPERATOR")  # fmt: skip


async def test_invalid_input_fails_at_once_naming_the_field(
    dev_env, settings, sessions, task_queue
):
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        for raw, needle in (
            ({"candidate_id": "c-x", "authorty": {}}, "authorty: Extra inputs are not permitted"),
            ({"candidate_id": "other"}, "candidate_id: 'other' does not match the workflow id"),
        ):
            with pytest.raises(WorkflowFailureError) as info:
                await dev_env.client.execute_workflow(
                    "PromoteCandidateWorkflow", raw, id="candidate-c-x", task_queue=task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                )  # fmt: skip
            assert info.value.cause.type == "InvalidCandidateInput"
            assert needle in str(info.value.cause)
    with pytest.raises(CandidateRequestError, match="invalid candidate: severity: "):
        await submit_candidate(dev_env.client, sessions, task_queue, candidate(severity="HUGE"))


async def test_event_emission_failure_does_not_fail_the_orchestration(
    dev_env, settings, sessions, task_queue, db_engine, caplog
):
    """The outbox table is really gone for this test: the incident must still be created."""
    payload = candidate()
    cid = payload["candidate_id"]
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_events RENAME TO outbox_events_offline"))
    try:
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            result = await submit_and_wait(dev_env, sessions, task_queue, payload)
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("ALTER TABLE outbox_events_offline RENAME TO outbox_events"))
    assert result.decision == "PROMOTE"
    assert [i.id for i in incidents_of(sessions, cid)] == [result.incident_id]
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 1
    assert count(sessions, OrchestrationAttempt, candidate_id=cid) == 1  # its own savepoint
    assert topics_of(sessions, cid) == []
    assert "IncidentCreated event failed; the orchestration goes on without it" in caplog.text


def test_purge_deletes_only_expired_log_rows(sessions):
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    expiry = {"old": now - timedelta(days=1), "just": now - timedelta(seconds=1),
              "new": now + timedelta(days=1)}  # fmt: skip
    with sessions.begin() as session:
        for name, expires_at in expiry.items():
            written = expires_at - timedelta(days=90)
            session.add(
                OrchestrationAttempt(
                    id=str(uuid.uuid4()),
                    candidate_id=f"purge-{tag}-{name}",
                    workflow_id="w",
                    workflow_run_id="r",
                    authority_type="AUTO_ENGINE",
                    authority_id="x",
                    status="success",
                    started_at=written,
                    completed_at=written,
                    duration_ms=0,
                    written_at=written,
                    expires_at=expires_at,
                )  # fmt: skip
            )
    purge = CandidateActivities(sessions).purge_orchestration_log
    assert ActivityEnvironment().run(purge) == 2
    left = [a.candidate_id for a in rows(sessions, OrchestrationAttempt) if tag in a.candidate_id]
    assert left == [f"purge-{tag}-new"]


async def test_cli_submit_promote_show_list(
    dev_env, settings, sessions, task_queue, monkeypatch, capsys, tmp_path
):
    """starter.py candidate ... end to end (each command runs its own event loop)."""
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TASK_QUEUE", task_queue)
    payload = candidate(signal_count=1)
    cid = payload["candidate_id"]
    path = tmp_path / "candidate.json"
    path.write_text(json.dumps(payload))

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    async with running_worker(dev_env.client, settings, sessions, task_queue):
        code, out, _ = await cli("candidate", "submit", str(path), "--wait", "--json")
        assert code == 0 and json.loads(out)["decision"] == "DEFER"
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(payload)))
        code, out, _ = await cli("candidate", "submit", "-")
        assert (code, out) == (0, f"candidate {cid} already submitted; joined candidate-{cid}\n")
        code, out, _ = await cli(
            "candidate", "promote", cid, "--actor", "alice", "--authority", "ON_CALL_SRE", "--json"
        )
        promoted = json.loads(out)
        assert code == 0 and promoted["decision"] == "PROMOTE"
        assert promoted["authority"]["authority_type"] == "ON_CALL_SRE"
        code, _, err = await cli("candidate", "promote", cid, "--actor", "bob")
        assert code == 1 and f"candidate '{cid}' is PROMOTED" in err
    code, out, _ = await cli("candidate", "show", cid, "--json")
    view = json.loads(out)
    assert (view["status"], view["incident_id"]) == ("PROMOTED", promoted["incident_id"])
    assert [d["decision"] for d in view["decisions"]] == ["DEFER", "PROMOTE"]
    assert [a["status"] for a in view["attempts"]] == ["success", "success"]
    code, out, _ = await cli("candidate", "show", cid)
    assert f"candidate {cid} (tenant acme): PROMOTED" in out and "by alice (ON_CALL_SRE)" in out
    code, out, _ = await cli("candidate", "list", "--status", "PROMOTED")
    assert code == 0 and f"{cid}: PROMOTED HIGH checkout policy default v1" in out
    path.write_text(json.dumps(candidate(severity="HUGE")))
    code, _, err = await cli("candidate", "submit", str(path))
    assert code == 1 and "error: invalid candidate: severity: Input should be" in err
    code, _, err = await cli("candidate", "show", "no-such-candidate")
    assert (code, err) == (1, "error: unknown candidate 'no-such-candidate'\n")


# ----- the tenant's promotion limits --------------------------------------------------------


async def test_submission_outside_the_tenants_limits_stores_and_starts_nothing(
    dev_env, sessions, task_queue
):
    tenant = new_tenant(sessions)
    set_promotion_settings(sessions, tenant, policies=["default", "manual-review"])
    cases = [
        (candidate(("strict", "1"), tenant_id=tenant), {}, "metadata.policy_id",
         f"metadata.policy_id: tenant {tenant!r} may not use promotion policy 'strict' "
         "(allowed: default, manual-review)"),
        (candidate(tenant_id=tenant, signal_count=10_001), {}, "signal_count",
         f"signal_count: 10001 is above the bound 10000: tenant {tenant!r} allows 0 to 10000 "
         "(max_signal_count)"),
        (candidate(tenant_id=tenant, signal_count=4), {"default_max_signal_count": 3},
         "signal_count", "signal_count: 4 is above the bound 3"),
    ]  # fmt: skip
    for payload, options, field, message in cases:
        with pytest.raises(CandidateLimitError) as info:
            await submit_candidate(dev_env.client, sessions, task_queue, payload, **options)
        assert info.value.field == field and str(info.value).startswith(message)
        cid = payload["candidate_id"]
        assert rows(sessions, Candidate, id=cid) == []
        wf = candidate_workflow_id(cid)
        assert [e async for e in dev_env.client.list_workflows(f'WorkflowId="{wf}"')] == []
    set_promotion_settings(sessions, tenant, max_signal_count=None, policies=None)
    allowed, _ = await submit_candidate(
        dev_env.client, sessions, task_queue, candidate(("strict", "1"), tenant_id=tenant)
    )
    assert not allowed.duplicate  # back to every frozen policy (no worker: stays PENDING)
    await dev_env.client.get_workflow_handle(allowed.workflow_id).terminate("done")


async def test_workflow_started_directly_with_a_policy_the_tenant_may_not_use_fails_closed(
    dev_env, settings, sessions, task_queue
):
    """Past the submission's check (a candidate stored before the tenant's list changed,
    started with the Temporal CLI): the load activity refuses it; nothing is decided."""
    tenant = new_tenant(sessions)
    payload = candidate(("strict", "1"), tenant_id=tenant)
    cid = payload["candidate_id"]
    assert store_candidate(sessions, validate_submission(payload))
    set_promotion_settings(sessions, tenant, policies=["default"])
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await dev_env.client.execute_workflow(
                "PromoteCandidateWorkflow", {}, id=candidate_workflow_id(cid),
                task_queue=task_queue,
            )  # fmt: skip
    cause = info.value.cause
    message = (
        f"metadata.policy_id: tenant {tenant!r} may not use promotion policy 'strict' "
        "(allowed: default)"
    )
    assert isinstance(cause, ApplicationError) and cause.type == "PolicyNotAllowed"
    assert cause.message == message and cause.non_retryable
    assert incidents_of(sessions, cid) == []
    assert count(sessions, PromotionDecisionRecord, candidate_id=cid) == 0
    assert rows(sessions, Candidate, id=cid)[0].status == "PENDING"
    [attempt] = rows(sessions, OrchestrationAttempt, candidate_id=cid)
    assert (attempt.status, attempt.error) == ("error", f"PolicyNotAllowed: {message}")
    assert topics_of(sessions, cid) == ["candidate.orchestration_failed"]
    await replay(dev_env, candidate_workflow_id(cid))


async def test_a_tightened_signal_bound_fails_a_manual_promotion_closed(
    dev_env, settings, sessions, task_queue
):
    tenant = new_tenant(sessions)
    payload = candidate(("manual-review", "1"), tenant_id=tenant, signal_count=50)
    cid = payload["candidate_id"]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        assert (await submit_and_wait(dev_env, sessions, task_queue, payload)).decision == "DEFER"
        set_promotion_settings(sessions, tenant, max_signal_count=10)
        with pytest.raises(CandidateRequestError) as info:
            await promote_candidate(dev_env.client, sessions, task_queue, cid, actor="alice",
                                    authority_type="HUMAN_OPERATOR")  # fmt: skip
    assert str(info.value) == (
        f"promotion of {cid!r} failed: SignalCountOutOfBounds: signal_count: 50 is above the "
        f"bound 10: tenant "
        f"{tenant!r} allows 0 to 10 (max_signal_count)"
    )
    assert incidents_of(sessions, cid) == []
    assert rows(sessions, Candidate, id=cid)[0].status == "DEFERRED"
    assert [d.decision for d in rows(sessions, PromotionDecisionRecord, candidate_id=cid)] == [
        "DEFER"
    ]
    errors = [a.error for a in rows(sessions, OrchestrationAttempt, candidate_id=cid) if a.error]
    assert [e.split(":")[0] for e in errors] == ["SignalCountOutOfBounds"]


async def test_cli_tenant_set_promotion_bounds_cli_submissions(
    dev_env, settings, sessions, task_queue, monkeypatch, capsys, tmp_path
):
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    monkeypatch.setenv("TASK_QUEUE", task_queue)
    tenant = new_tenant(sessions)

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = await cli("tenant", "set-promotion", tenant, "--policies", "default,strict",
                               "--max-signal-count", "1000")  # fmt: skip
    assert (code, err) == (0, "")
    assert out == f"tenant {tenant}: promotion policies default, strict; max signal count 1000\n"
    [audit] = rows(sessions, AuditLedgerEntry, tenant_id=tenant,
                   event_type="TENANT_PROMOTION_SETTINGS_UPDATED")  # fmt: skip
    assert audit.before_state == {"promotion_policies": None, "max_signal_count": None}
    assert audit.after_state == {"promotion_policies": ["default", "strict"],
                                 "max_signal_count": 1000}  # fmt: skip
    assert (audit.actor_id, audit.entity_id) == ("operator", tenant)
    code, out, _ = await cli("tenant", "list")
    assert f"{tenant}: ACTIVE" in out and "promotion_policies=default,strict" in out

    for over, needle in (
        ({"metadata": {"policy_id": "manual-review", "policy_version": "1"}},
         "may not use promotion policy 'manual-review' (allowed: default, strict)"),
        ({"signal_count": 1_000_000_000}, "1000000000 is above the bound 1000"),
    ):  # fmt: skip
        payload = candidate(tenant_id=tenant) | over
        path = tmp_path / f"{payload['candidate_id']}.json"
        path.write_text(json.dumps(payload))
        code, out, err = await cli("candidate", "submit", str(path))
        assert (code, out) == (1, "") and err.startswith("error: ") and needle in err
        assert err.count("\n") == 1  # one line
        assert rows(sessions, Candidate, id=payload["candidate_id"]) == []

    for argv, needle in (
        (["--policies", "default,bogus"], "policies: unknown promotion policies bogus"),
        (["--max-signal-count", "0"], "max_signal_count: must be between 1 and"),
        (["--max-signal-count", "lots"], "--max-signal-count: 'lots' is not a whole number"),
        ([], "nothing to change"),
    ):
        code, _, err = await cli("tenant", "set-promotion", tenant, *argv)
        assert code == 1 and needle in err, err
    code, _, err = await cli("tenant", "set-promotion", "no-such-tenant", "--policies", "all")
    assert (code, err) == (1, "error: unknown tenant 'no-such-tenant' "
                              "(create it: starter.py tenant add no-such-tenant)\n")  # fmt: skip
    code, out, _ = await cli("tenant", "set-promotion", tenant, "--policies", "all",
                             "--max-signal-count", "default", "--json")  # fmt: skip
    assert json.loads(out) == {"promotion_policies": None, "max_signal_count": None}
    audits = rows(sessions, AuditLedgerEntry, tenant_id=tenant,
                  event_type="TENANT_PROMOTION_SETTINGS_UPDATED")  # fmt: skip
    assert len(audits) == 2  # the refused changes wrote nothing
