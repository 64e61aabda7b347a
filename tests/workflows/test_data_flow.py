"""Data that flows between steps (domain.step_refs), on the real dev server and both
databases: a step's input references an earlier step's output; the workflow resolves it
from the recorded result, the trace records and hashes what was sent, and a bad
reference is refused at start with nothing written."""

import pytest
from temporalio.client import WorkflowFailureError

from clients.runs import RunRequestError
from clients.runs import start_run as start_validated
from db.models import Run, TraceStep
from db.queries.evidence import run_proof
from tests.helpers import new_tenant, rows, running_worker, start_run

pytestmark = pytest.mark.timeout(120)

FLOW = [
    {"id": "greet", "skill": "echo", "input": {"text": "hello"}},
    {"id": "who", "skill": "echo", "input": {"text": "world"}},
    {"skill": "template", "input": {
        "template": "$greeting, $name!",
        "variables": {"greeting": {"$ref": "steps.greet.output.text"},
                      "name": {"$ref": "steps.who.output.text"}}}},
]  # fmt: skip


async def test_a_step_uses_earlier_outputs_and_the_trace_proves_what_was_sent(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": FLOW})  # fmt: skip
        result = await handle.result()
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 3)
    steps = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert steps[2].output == {"text": "hello, world!"}
    # The trace step holds the resolved input: the hash chain covers what the skill got.
    assert steps[2].input["variables"] == {"greeting": "hello", "name": "world"}
    with sessions() as session:
        proof = run_proof(session, run_id)
    assert proof.status == "VERIFIED", proof


async def test_a_reference_the_output_does_not_have_fails_the_step_before_it_runs(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    steps = [FLOW[0], {"skill": "echo", "input": {"text": {"$ref": "steps.greet.output.body"}}}]
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        result = await handle.result()
    assert (result.phase, result.status, result.steps_done) == ("FAILED", "failed", 1)
    assert "step 1 (echo) not run" in result.reason
    assert "steps.1.input.text: reference 'steps.greet.output.body': no 'body'" in result.reason
    assert len(rows(sessions, TraceStep, run_id=run_id)) == 1  # the second never ran


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([{"skill": "echo", "input": {"text": {"$ref": "steps.nope.output.text"}}}],
         "steps.0.input.text: reference 'steps.nope.output.text' names no step (step ids: none)"),
        ([{"skill": "echo", "input": {"text": {"$ref": "steps.later.output.text"}}},
          {"id": "later", "skill": "echo", "input": {"text": "x"}}],
         "names a later step (step 1)"),
        ([{"id": "me", "skill": "echo", "input": {"text": {"$ref": "steps.me.output.text"}}}],
         "names itself (step 0)"),
        ([{"id": "a", "skill": "echo", "input": {"text": "x"}},
          {"id": "a", "skill": "echo", "input": {"text": "y"}}],
         "steps.1.id: 'a' is already the id of step 0"),
        ([{"id": "a", "skill": "echo", "input": {"text": "x"}},
          {"skill": "echo", "input": {"text": {"$ref": "a.text"}}}],
         "steps.1.input.text: malformed reference 'a.text'"),
        ([{"id": "a", "skill": "echo", "input": {"text": "x"}},
          {"skill": "echo", "input": {"text": {"$ref": "steps.a.output", "extra": 1}}}],
         "malformed reference"),
    ],
)  # fmt: skip
async def test_a_bad_reference_is_refused_at_start_and_nothing_is_written(
    dev_env, settings, sessions, task_queue, run_id, steps, problem
):
    tenant = new_tenant(sessions)
    payload = {"run_id": run_id, "tenant_id": tenant, "steps": steps}
    with pytest.raises(RunRequestError, match="invalid run") as refused:
        await start_validated(dev_env.client, task_queue, payload)
    assert problem in str(refused.value)
    # Sent to Temporal anyway (the Temporal CLI): the workflow refuses it before any write.
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    assert problem in str(failed.value.cause)
    assert rows(sessions, Run, id=run_id) == []
