"""Real skills over TCP (llm, http), a skill failing mid-run, and malformed input."""

from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from db.models import AuditExpectation, Incident, Run, TraceStep
from domain.reconciler import AckRow, ExpectationRow, reconcile
from runtime.chat_completions import chat_server
from tests.helpers import count, new_tenant, rows, running_worker, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def llm_server():
    with chat_server(usage=(1000, 500)) as server:
        yield server


@pytest.fixture
def llm_settings(settings, llm_server):
    return settings.model_copy(update={"llm_base_url": llm_server.base_url})


async def test_llm_and_http_skills_do_real_calls(dev_env, llm_settings, llm_server, sessions,
                                                 task_queue, run_id):  # fmt: skip
    tenant = new_tenant(sessions)
    with local_server() as http_server:
        allow_egress(sessions, tenant, http_server.url)  # for the http step (llm: the operator's)
        steps = [
            {"skill": "llm", "input": {"prompt": "hello", "model": "tiny"}},
            {"skill": "http", "input": {"url": f"{http_server.url}/things/1"}},
            {"skill": "template", "input": {"template": "hi $x", "variables": {"x": 1}}},
        ]
        async with running_worker(dev_env.client, llm_settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            result = await handle.result()
    assert result.status == "succeeded"
    [sent] = llm_server.bodies()
    assert sent["messages"] == [{"role": "user", "content": "hello"}] and sent["model"] == "tiny"
    trace = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert trace[0].output["text"] == "echo: hello"
    # 1000 prompt tokens at 0.00015/1k + 500 completion tokens at 0.0006/1k
    assert trace[0].cost == Decimal("0.00045")
    assert trace[1].output["status"] == 200 and "/things/1" in trace[1].output["body"]
    assert trace[2].output == {"text": "hi 1"}
    assert result.cost == Decimal("0.00045") + 2 * llm_settings.skill_base_cost


async def test_skill_failure_mid_run(dev_env, settings, sessions, task_queue, run_id):
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [
            {"skill": "echo", "input": {"text": "ok"}},
            {"skill": "http", "input": {"url": f"{server.url}/status/404"}},
            {"skill": "echo", "input": {"text": "never"}},
        ]
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            result = await handle.result()
    assert (result.phase, result.status) == ("FAILED", "failed")
    assert "step 1 (http) failed" in result.reason and "404" in result.reason
    trace = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [(s.step_index, s.status) for s in trace] == [(0, "OK"), (1, "FAILED")]
    incidents = rows(sessions, Incident, source_run_id=run_id)
    assert [(i.category, i.severity, i.status) for i in incidents] == [
        ("RUN_FAILURE", "HIGH", "OPEN")
    ]
    expectations = rows(sessions, AuditExpectation, run_id=run_id)
    withdrawn = [e.action for e in expectations if e.withdrawn_at is not None]
    assert withdrawn == ["record_step:2"]
    assert rows(sessions, Run, id=run_id)[0].failure_reason == result.reason


async def test_retryable_skill_failure_is_retried_then_recorded(dev_env, settings, sessions,
                                                                task_queue, run_id):  # fmt: skip
    tenant = new_tenant(sessions)
    with local_server() as server:
        allow_egress(sessions, tenant, server.url)
        steps = [{"skill": "http", "input": {"url": f"{server.url}/status/503"}}]
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            result = await handle.result()
        assert server.hits.count("/status/503") == 3  # STEP_MAX_ATTEMPTS
    assert result.status == "failed" and "503" in result.reason
    assert count(sessions, TraceStep, run_id=run_id) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"steps": [{"skill": "echo", "input": {"text": "x"}}]}, "tenant_id"),
        ({"tenant_id": "acme", "steps": []}, "steps"),
        ({"tenant_id": "acme", "steps": [{"skill": "echo", "input": {"text": "x"}}],
          "budget": -1}, "budget"),
        ({"tenant_id": "acme", "steps": [{"skill": "echo", "input": {"text": "x"}}],
          "surprise": 1}, "surprise"),
        ({"tenant_id": "acme", "steps": [{"skill": "nope"}]}, "unknown skill 'nope'"),
    ],
)  # fmt: skip
async def test_malformed_input_fails_at_once_and_writes_nothing(
    dev_env, settings, sessions, task_queue, run_id, payload, field
):
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id, payload)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRunInput"
    assert cause.non_retryable and field in cause.message
    assert count(sessions, Run, id=run_id) == 0
    assert count(sessions, AuditExpectation, run_id=run_id) == 0


async def test_reconciliation_of_failed_run_is_clean(dev_env, settings, sessions, task_queue,
                                                     run_id):  # fmt: skip
    """A run that failed mid-way withdrew what it never did: nothing is missing."""
    from datetime import UTC, datetime

    from db.models import DomainAck

    tenant = new_tenant(sessions)
    steps = [{"skill": "template", "input": {"template": "$missing"}},
             {"skill": "echo", "input": {"text": "x"}}]  # fmt: skip
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        result = await handle.result()
    assert result.status == "failed" and "placeholder" in result.reason
    expectations = [ExpectationRow(e.domain, e.action, e.deadline, e.withdrawn_at is not None)
                    for e in rows(sessions, AuditExpectation, run_id=run_id)]  # fmt: skip
    acks = [AckRow(a.domain, a.action, a.rolled_back) for a in rows(sessions, DomainAck,
                                                                    run_id=run_id)]  # fmt: skip
    assert reconcile(expectations, acks, datetime.now(UTC)).clean
