"""The workers run the SDK's own sandbox (``SandboxedWorkflowRunner``), and it guards.

Every workflow class passes the sandbox's validation offline; the runner is the SDK's
class itself, so what recognises it (debug mode, the OpenTelemetry plugin) does; on the
real dev server, a workflow that reads the wall clock still fails its workflow task.
"""

import asyncio
import datetime
import uuid

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import _Definition

from runtime.worker_factory import PASSTHROUGH, WORKFLOWS, build_worker, workflow_runner


@workflow.defn(name="SandboxReadsTheClock")
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.datetime.now().isoformat()  # not deterministic: the sandbox refuses


@pytest.mark.parametrize("cls", WORKFLOWS, ids=lambda c: c.__name__)
async def test_workflow_is_sandbox_safe(cls):
    workflow_runner().prepare_workflow(_Definition.must_from_class(cls))


def test_the_runner_is_the_sdks_sandbox_with_the_passthrough_modules():
    runner = workflow_runner()
    assert type(runner) is SandboxedWorkflowRunner
    assert set(PASSTHROUGH) <= set(runner.restrictions.passthrough_modules)


@pytest.mark.timeout(60)
async def test_the_worker_runs_it_and_plugins_recognise_it(dev_env, settings, sessions, task_queue):
    worker = build_worker(dev_env.client, settings, sessions, task_queue=task_queue, activities=[])
    assert isinstance(worker.config()["workflow_runner"], SandboxedWorkflowRunner)
    # The OpenTelemetry plugin passes opentelemetry through only for a SandboxedWorkflowRunner.
    config = {"client": dev_env.client, "workflow_runner": workflow_runner()}
    runner = OpenTelemetryPlugin().configure_worker(config)["workflow_runner"]
    assert "opentelemetry" in runner.restrictions.passthrough_modules


@pytest.mark.timeout(60)
async def test_the_sandbox_still_refuses_a_wall_clock_read(
    dev_env: WorkflowEnvironment, task_queue: str
):
    client = dev_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=[ReadsTheClock], workflow_runner=workflow_runner()
    ):
        handle = await client.start_workflow(
            ReadsTheClock.run, id=f"clock-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        failure = None
        for _ in range(100):
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failure = event.workflow_task_failed_event_attributes.failure.message
            if failure:
                break
            await asyncio.sleep(0.1)
        await handle.terminate("test over")
    assert failure is not None and "datetime.datetime.now" in failure
