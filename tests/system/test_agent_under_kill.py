"""An agent run whose worker is SIGKILLed mid-loop: the next worker replays the loop from the
recorded results, so the tool call that ran is never run again (the local server sees it
once), the model call in flight is sent again, each step is recorded once and the chain
verifies. A failing wait prints the workers' own output."""

import asyncio

import pytest

from db.models import TraceStep
from db.queries.evidence import run_proof
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from tests.helpers import new_tenant, rows, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress
from tools.chaos.processes import WorkerProcess

pytestmark = pytest.mark.timeout(180)


async def test_a_killed_worker_never_runs_a_recorded_tool_call_again(
    dev_env, settings, sessions, tmp_path, task_queue, run_id
):
    tenant = new_tenant(sessions)
    with local_server() as tools, chat_server() as llm:
        allow_egress(sessions, tenant, tools.url)
        # Turn 0 calls the tool; turn 1's answer takes 3 s: the worker dies meanwhile.
        llm.script("agent", [Turn.calls(ToolCall("http", {"url": f"{tools.url}/ticket/42"})),
                             Turn.reply("P1").after(3)])  # fmt: skip
        env = {"LLM_BASE_URL": llm.base_url}
        address = dev_env.client.service_client.config.target_host
        first = WorkerProcess(address, settings.database_url, task_queue, tmp_path, env)
        second = WorkerProcess(address, settings.database_url, task_queue, tmp_path, env)
        try:
            first.start()
            await asyncio.to_thread(first.wait_ready, 120)
            step = {
                "id": "triage",
                "skill": "agent",
                "input": {"model": "agent", "prompt": "Triage ticket 42.", "tools": ["http"]},
            }
            handle = await start_run(dev_env.client, task_queue, run_id,
                                     {"tenant_id": tenant, "steps": [step]})  # fmt: skip
            for _ in range(400):  # the second model call is under way
                if len(llm.bodies()) == 2:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"turn 1 never started:\n{first.output_tail()}")
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
    assert (result.status, result.steps_done) == ("succeeded", 3)
    assert tools.hits == ["/ticket/42"]  # the recorded tool call was not run again
    assert len(llm.bodies()) == 3  # the model call in flight was sent again
    chain = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert [(s.step_index, s.skill) for s in chain] == [(0, "llm"), (1, "http"), (2, "llm")]
    with sessions() as session:
        assert run_proof(session, run_id).status == "VERIFIED"
