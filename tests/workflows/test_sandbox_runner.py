"""runtime.sandbox_runner: the sandbox still guards the workflows; contexts are skipped
only where nothing could use them.

On the real dev server: a workflow that reads the wall clock still fails its workflow
task under the context-free runner, and a worker whose data converter has a payload
codec gets the plain sandbox, whose codec still receives each command's context.
"""

import asyncio
import dataclasses
import datetime
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from runtime.sandbox_runner import ContextFreeSandboxRunner, contexts_unused
from runtime.worker_factory import workflow_runner

pytestmark = pytest.mark.timeout(60)


@activity.defn(name="sandbox-runner.double")
def double(n: int) -> int:
    return 2 * n


@workflow.defn(name="SandboxRunnerDoubles")
class Doubles:
    @workflow.run
    async def run(self, n: int) -> int:
        local = await workflow.execute_local_activity(
            double, n, start_to_close_timeout=timedelta(seconds=10)
        )
        return await workflow.execute_activity(
            double, local, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn(name="SandboxRunnerReadsTheClock")
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.datetime.now().isoformat()  # not deterministic: the sandbox refuses


@dataclasses.dataclass
class RecordingCodec(PayloadCodec, WithSerializationContext):
    """Passes payloads through; records the contexts the worker gave it."""

    seen: list[SerializationContext | None] = dataclasses.field(default_factory=list)
    context: SerializationContext | None = None

    def with_context(self, context: SerializationContext) -> "RecordingCodec":
        return dataclasses.replace(self, context=context)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.append(self.context)
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.seen.append(self.context)
        return list(payloads)


def test_the_project_converter_gets_the_context_free_sandbox():
    assert contexts_unused(pydantic_data_converter)
    assert isinstance(workflow_runner(pydantic_data_converter), ContextFreeSandboxRunner)


def test_a_codec_gets_the_plain_sandbox():
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=RecordingCodec())
    assert not contexts_unused(converter)
    assert type(workflow_runner(converter)) is SandboxedWorkflowRunner


async def run_doubles(client: Client, task_queue: str) -> int:
    """Doubles (a local activity, then an activity) on a worker with the project's runner
    for ``client``'s data converter."""
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Doubles],
        activities=[double],
        activity_executor=ThreadPoolExecutor(2),
        workflow_runner=workflow_runner(client.data_converter),
    ):
        return await client.execute_workflow(
            Doubles.run, 5, id=f"doubles-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )


async def test_context_free_runner_runs_activities_and_local_activities(
    dev_env: WorkflowEnvironment, task_queue: str
):
    assert await run_doubles(dev_env.client, task_queue) == 20


async def test_the_sandbox_still_refuses_a_wall_clock_read(
    dev_env: WorkflowEnvironment, task_queue: str
):
    client = dev_env.client
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ReadsTheClock],
        workflow_runner=workflow_runner(client.data_converter),
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


async def test_a_codec_still_receives_each_commands_context(
    dev_env: WorkflowEnvironment, task_queue: str
):
    codec = RecordingCodec()
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=codec)
    client = Client(**{**dev_env.client.config(), "data_converter": converter})
    assert await run_doubles(client, task_queue) == 20
    activity_contexts = [c for c in codec.seen if isinstance(c, ActivitySerializationContext)]
    assert {c.is_local for c in activity_contexts} == {True, False}
    assert {c.activity_type for c in activity_contexts} == {"sandbox-runner.double"}
