"""A PhaseInvariantError is a bug: it fails the workflow task, not the run, so the run
waits open for a fixed worker (Temporal retries a failed workflow task without adding
history events), instead of ending FAILED with its row left where it was."""

import asyncio
import uuid

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from domain.enums import Phase, RunStatus
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites

pytestmark = pytest.mark.timeout(60)


@workflow.defn(name="PhaseBugWorkflow")
class PhaseBugWorkflow:
    """Asks RunWrites for a transition the phase machine forbids (CREATED → COMPLETED)."""

    @workflow.run
    async def run(self) -> str:
        RunWrites(RunState("r-bug", "t-bug", 1)).phase_change(Phase.COMPLETED, RunStatus.SUCCEEDED)
        return "unreachable"


async def test_a_phase_invariant_error_fails_the_workflow_task_and_the_run_stays_open(dev_env):
    task_queue = f"tq-{uuid.uuid4().hex[:10]}"
    async with Worker(dev_env.client, task_queue=task_queue, workflows=[PhaseBugWorkflow]):
        handle = await dev_env.client.start_workflow(
            PhaseBugWorkflow.run, id=f"phase-bug-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        failed = []
        for _ in range(100):
            events = (await handle.fetch_history()).events
            failed = [e for e in events
                      if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]  # fmt: skip
            if failed:
                break
            await asyncio.sleep(0.1)
        assert failed, "no workflow task failed"
        message = failed[0].workflow_task_failed_event_attributes.failure.message
        assert "CREATED" in message and "COMPLETED" in message, message
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate("test over")
