"""The demo `make run` shows (cli.demo) ends each run the way the README says."""

import pytest

from cli.demo import run_demo_with
from runtime.chat_completions import chat_server
from tests.helpers import running_worker

pytestmark = pytest.mark.timeout(120)


async def test_the_demo_runs_end_as_the_readme_says(dev_env, settings, sessions, task_queue):
    with chat_server() as chat:  # the local model `make run` starts
        demo_settings = settings.model_copy(update={"task_queue": task_queue,
                                                    "llm_base_url": chat.base_url})  # fmt: skip
        async with running_worker(dev_env.client, demo_settings, sessions, task_queue):
            results = await run_demo_with(dev_env.client, sessions, demo_settings, chat)
            paused_id = results["paused"].split(":")[0].removeprefix("run ")
            await dev_env.client.get_workflow_handle(f"run-{paused_id}").signal(
                "stop", {"actor": {"id": "test", "authority": "TENANT_ADMIN"}})  # fmt: skip
    assert "COMPLETED succeeded" in results["completed"]
    assert "FAILED failed_policy (budget 50 exceeds the tenant's limit 1)" in results["denied"]
    assert "FAILED failed_policy (prevented by the budget: step 3 (echo)" in results[
        "budget_exhausted"]  # fmt: skip
    assert ("FAILED failed_policy (prevented by rule 'no-unreviewed-llm' (BLOCKED): step 1 "
            "(llm)") in results["blocked"]  # fmt: skip
    assert "EXECUTING paused" in results["paused"] and "starter.py resume" in results["paused"]
    # The agent called echo and template, then http, which the rule stopped before it ran.
    assert ("FAILED failed_policy (prevented by rule 'agents-no-http' (BLOCKED): step 4 "
            "(http)") in results["agent"]  # fmt: skip
