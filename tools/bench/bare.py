"""BareWorkflow: k no-op activities, no governance — the baseline governed runs are compared to.

Registered only by the bench worker (tools.bench.harness). Its steps are regular
activities run in the same thread pool as a governed run's ``steps.execute``, so the
difference between the two is what governance adds.
"""

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import activity, workflow

BARE_WORKFLOW = "BareWorkflow"
NOOP_ACTIVITY = "bench.noop"


class BareInput(BaseModel):
    """How many no-op activities to run, one after the other."""

    steps: int = Field(ge=0, le=1000)


class BareResult(BaseModel):
    steps_done: int


@activity.defn(name=NOOP_ACTIVITY)
def noop(index: int) -> int:
    """Does nothing; returns its index."""
    return index


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    """Runs ``steps`` no-op activities in sequence and returns how many ran."""

    @workflow.run
    async def run(self, inp: BareInput) -> BareResult:
        for index in range(inp.steps):
            await workflow.execute_activity(
                noop, index, start_to_close_timeout=timedelta(seconds=30)
            )
        return BareResult(steps_done=inp.steps)
