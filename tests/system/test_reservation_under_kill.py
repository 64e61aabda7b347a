"""Budget reservations under a worker SIGKILL: the llm call in flight when the worker dies is
sent again by the next worker (skills are at-least-once), but the run is charged once per
step — the settled total equals the sum of the recorded usages. A failing wait prints the
worker's own output."""

import asyncio
from decimal import Decimal

import pytest

from db.models import Run, TraceStep
from runtime.chat_completions import chat_server
from runtime.chat_scripts import Turn
from tests.helpers import new_tenant, rows, start_run
from tools.chaos.processes import WorkerProcess

pytestmark = pytest.mark.timeout(180)

CALL = Decimal("0.00045")  # 1000 prompt tokens at 0.00015/1k + 500 completion at 0.0006/1k


async def test_a_killed_worker_never_double_charges_a_model_call(
    dev_env, settings, sessions, tmp_path, task_queue, run_id
):
    tenant = new_tenant(sessions, budget=Decimal("1"))
    with chat_server(usage=(1000, 500)) as llm:
        llm.script("slow", [Turn.reply("late").after(3)])  # step 1's model answers after 3 s
        env = {"LLM_BASE_URL": llm.base_url}
        address = dev_env.client.service_client.config.target_host
        first = WorkerProcess(address, settings.database_url, task_queue, tmp_path, env)
        second = WorkerProcess(address, settings.database_url, task_queue, tmp_path, env)
        try:
            first.start()
            await asyncio.to_thread(first.wait_ready, 120)
            steps = [{"skill": "llm", "input": {"prompt": p, "max_tokens": 600}}
                     for p in ("one", "two", "three")]  # fmt: skip
            steps[1]["input"]["model"] = "slow"
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": steps})  # fmt: skip
            for _ in range(400):
                if any(body["model"] == "slow" for body in llm.bodies()):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"the slow call never arrived:\n{first.output_tail()}")
            first.kill()  # mid-call: its answer is never recorded
            second.start()
            await asyncio.to_thread(second.wait_ready, 120)
            result = await asyncio.wait_for(handle.result(), 120)
        except BaseException:
            print(first.output_tail(), second.output_tail(), sep="\n---\n")
            raise
        finally:
            first.kill()
            second.kill()
    prompts = [body["messages"][-1]["content"] for body in llm.bodies()]
    assert prompts.count("two") == 2  # sent again after the kill
    assert (result.status, result.steps_done) == ("succeeded", 3)
    recorded = [s.cost for s in rows(sessions, TraceStep, run_id=run_id)]
    assert recorded == [CALL, CALL, CALL]  # one recorded usage per step
    (run,) = rows(sessions, Run, id=run_id)
    assert result.cost == run.cost == sum(recorded) == 3 * CALL
