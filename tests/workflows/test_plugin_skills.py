"""Plugin skills in real runs on the dev server: the example plugin's skills in a governed
run, and skills that misbehave (raise, return what is not JSON, hang, outlast the heartbeat
timeout, vanish from the worker), each failing its own step with a clear error and the
usual governance; a run's replay does not depend on which plugins the replaying worker has.
"""

import asyncio
from decimal import Decimal

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from clients import runs as run_client
from db.models import AuditExpectation, Incident, Run, TraceStep
from db.queries.evidence import run_proof
from domain.skill_catalog import BUILT_IN_CATALOG, STEP_HEARTBEAT_SECONDS
from runtime.worker_factory import build_activities, step_activities
from tests.faults import name_of
from tests.helpers import count, markers, new_tenant, rows, running_worker, start_run
from tests.plugins.misbehaving_skills import RELEASE_HUNG
from tests.plugins.plugin_support import misbehaving_catalog
from tests.replay.recorded import replayer
from workflows import patches
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The installed skills (built-in, example plugin) and the misbehaving ones."""
    RELEASE_HUNG.clear()
    yield misbehaving_catalog(tmp_path_factory.mktemp("plugins"))
    RELEASE_HUNG.set()  # the hung sync skill's threads end with the tests


def trace_of(sessions, run_id: str) -> list[TraceStep]:
    return sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)


def proof(sessions, run_id: str) -> str:
    with sessions() as session:
        return run_proof(session, run_id).status


async def test_the_example_plugins_skills_run_governed_and_traced(dev_env, settings, sessions,
                                                                  task_queue):  # fmt: skip
    tenant = new_tenant(sessions, allowed_skills=["word_count", "slugify", "echo"])
    payload = {"tenant_id": tenant, "steps": [
        {"skill": "word_count", "input": {"text": "to be or not to be", "top": 1}},
        {"skill": "slugify", "input": {"title": "Hello, Plugins!"}},
        {"skill": "echo", "input": {"text": "done"}}]}  # fmt: skip
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        handle = await run_client.start_run(dev_env.client, task_queue, payload)  # the edge checks
        result = await run_client.run_result(handle)
    run_id = handle.id.removeprefix("run-")
    assert (result.phase, result.status) == ("COMPLETED", "succeeded"), result.reason
    trace = trace_of(sessions, run_id)
    assert [(s.skill, s.status) for s in trace] == [
        ("word_count", "OK"), ("slugify", "OK"), ("echo", "OK")]  # fmt: skip
    assert trace[0].output == {"words": 6, "distinct": 4,
                               "commonest": [{"word": "be", "count": 2}]}  # fmt: skip
    assert trace[1].output == {"slug": "hello-plugins"}
    assert trace[0].cost == Decimal("0.00002")  # its fixed cost model
    assert trace[1].cost == settings.skill_base_cost
    assert result.cost == Decimal("0.00002") + 2 * settings.skill_base_cost
    assert proof(sessions, run_id) == "VERIFIED"


FAILURES = {
    "boom": "skill 'boom' raised ValueError: the plugin broke",
    "not_json": "skill 'not_json' returned a value that is not JSON: output.tags is a set",
    "hang": "skill 'hang' did not return within 1 s (hung)",
    "hang_async": "skill 'hang_async' did not return within 1 s (hung)",
}


async def test_a_misbehaving_skill_fails_its_step_with_a_clear_error(dev_env, settings, sessions,
                                                                     task_queue, run_id,
                                                                     catalog):  # fmt: skip
    tenant = new_tenant(sessions)
    acts = build_activities(settings, sessions, skills=catalog)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handles = {
            skill: await start_run(dev_env.client, task_queue, f"{run_id}-{skill}", {
                "tenant_id": tenant, "steps": [{"skill": "echo", "input": {"text": "before"}},
                                               {"skill": skill}, {"skill": "tally"}]})
            for skill in FAILURES
        }  # fmt: skip
        results = dict(zip(handles, await asyncio.gather(*(h.result() for h in handles.values())),
                           strict=True))  # fmt: skip
        # Each step ended on its first attempt, by its skill's limit: no timeout, no retry.
        for handle in handles.values():
            events = [e async for e in handle.fetch_history_events()]
            assert EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT not in [
                e.event_type for e in events
            ]
            attempts = [e.activity_task_started_event_attributes.attempt for e in events
                        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]  # fmt: skip
            assert attempts == [1, 1], attempts  # steps 0 and 1
    for skill, error in FAILURES.items():
        result, rid = results[skill], f"{run_id}-{skill}"
        assert (result.phase, result.status) == ("FAILED", "failed"), (skill, result)
        assert result.reason == f"step 1 ({skill}) failed: {error}"
        trace = trace_of(sessions, rid)
        assert [(s.skill, s.status, s.error) for s in trace] == [
            ("echo", "OK", None),
            (skill, "FAILED", error),
        ]  # recorded, once; tally never ran
        assert [(i.category, i.status) for i in rows(sessions, Incident, source_run_id=rid)] == [
            ("RUN_FAILURE", "OPEN")]  # fmt: skip
        withdrawn = [e.action for e in rows(sessions, AuditExpectation, run_id=rid)
                     if e.withdrawn_at is not None]  # fmt: skip
        assert withdrawn == ["record_step:2"]
        assert proof(sessions, rid) == "VERIFIED"


async def test_a_long_healthy_skill_outlives_the_heartbeat_timeout(dev_env, settings, sessions,
                                                                   task_queue, run_id,
                                                                   catalog):  # fmt: skip
    """The activity heartbeats while the skill runs: 2 s past the heartbeat timeout is fine."""
    tenant = new_tenant(sessions)
    seconds = STEP_HEARTBEAT_SECONDS + 2
    acts = build_activities(settings, sessions, skills=catalog)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        steps = [{"skill": "slow", "input": {"seconds": seconds}}]
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": steps})  # fmt: skip
        result = await handle.result()
    assert result.status == "succeeded", result.reason
    [step] = trace_of(sessions, run_id)
    assert step.output == {"slept": seconds}


async def test_a_skill_the_worker_lacks_is_refused_at_open_and_nothing_is_written(
    dev_env, settings, sessions, task_queue, run_id
):
    """Started without an edge's check (as `temporal workflow start` does): runs.open refuses
    it against the worker's catalog, non-retryable, before anything is written."""
    tenant = new_tenant(sessions)
    acts = build_activities(settings, sessions, skills=BUILT_IN_CATALOG)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id, {
            "tenant_id": tenant, "steps": [{"skill": "word_count", "input": {"text": "a"}},
                                           {"skill": "echo", "input": {}}]})  # fmt: skip
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        found = await markers(handle)
    assert ("core_patch", patches.SKILLS_CHECKED_AT_OPEN) in found
    assert ("core_local_activity", "runs.open") in found
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidRunInput", cause
    assert cause.non_retryable
    assert cause.message == ("invalid RunWorkflow input: steps.0: unknown skill 'word_count' "
                             "(known skills: echo, http, llm, template)")  # fmt: skip
    assert count(sessions, Run, id=run_id) == 0
    assert count(sessions, AuditExpectation, run_id=run_id) == 0


async def test_a_skill_gone_from_the_worker_after_the_run_opened_fails_its_step(
    dev_env, settings, sessions, task_queue, run_id, catalog
):
    """Issue 17 item 5: removing a skill fails the open runs that use it at that step,
    recorded (after the step's attempts: another worker could have had it), never on replay."""
    tenant = new_tenant(sessions)
    without = step_activities(settings, sessions, BUILT_IN_CATALOG).execute
    acts = [a for a in build_activities(settings, sessions, skills=catalog)
            if name_of(a) != "steps.execute"] + [without]  # fmt: skip
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": [{"skill": "tally"}]})  # fmt: skip
        result = await handle.result()
    error = ("skill 'tally' is not installed on this worker "
             "(installed: echo, http, llm, template)")  # fmt: skip
    assert (result.status, result.reason) == ("failed", f"step 0 (tally) failed: {error}")
    [step] = trace_of(sessions, run_id)
    assert (step.status, step.error) == ("FAILED", error)


async def test_a_run_of_a_plugin_skill_replays_where_the_plugin_is_not_installed(
    dev_env, settings, sessions, task_queue, run_id, catalog
):
    """'tally' is only in the recording worker's catalog, not in this process's installed
    one: the replay passes, since workflow code never consults a catalog."""
    from domain.skill_discovery import installed_catalog

    assert "tally" not in installed_catalog().entries
    tenant = new_tenant(sessions)
    acts = build_activities(settings, sessions, skills=catalog)
    async with running_worker(dev_env.client, settings, sessions, task_queue, activities=acts):
        handle = await start_run(dev_env.client, task_queue, run_id,
                                 {"tenant_id": tenant, "steps": [{"skill": "tally"}]})  # fmt: skip
        result = await handle.result()
        history = await handle.fetch_history()
    assert (result.status, result.cost) == ("succeeded", Decimal("0.5"))
    replayed = await replayer(RunWorkflow).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
