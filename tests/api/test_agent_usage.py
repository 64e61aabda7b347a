"""A run's usage per model (db.queries.evidence.run_usage: its llm trace steps, an agent's
model calls among them) in the HTTP API's run view and evidence, and in `starter.py status`
and `starter.py evidence` — an agent run started over HTTP against the local chat server,
on the real dev server and both databases."""

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from tests.helpers import running_worker

pytestmark = pytest.mark.timeout(120)

# Two model calls of 100 prompt and 20 completion tokens at the default prices
# (0.00015 and 0.0006 per 1k): 200 and 40 tokens, 0.000054.
EXPECTED_COST = (Decimal(200) * Decimal("0.00015") + Decimal(40) * Decimal("0.0006")) / 1000


def agent_run(run_id: str, model: str) -> dict:
    return {"run_id": run_id, "budget": "1", "steps": [{"skill": "agent", "input": {
        "model": model, "prompt": "Triage ticket 42.", "tools": ["echo"]}}]}  # fmt: skip


async def finished(api, run_id, headers) -> dict:
    for _ in range(300):
        view = (await api.get(f"/runs/{run_id}", headers=headers)).json()
        if view.get("workflow_status") == "COMPLETED":
            return view
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never completed: {view}")


async def test_the_usage_per_model_is_in_the_run_view_evidence_and_cli(
    dev_env, api, app_settings, sessions, task_queue, tenant_keys, monkeypatch, capsys
):
    from cli.main import main

    keys = tenant_keys()
    run_id = f"r-{uuid.uuid4().hex[:12]}"
    model = f"usage-{run_id}"
    with chat_server(usage=(100, 20)) as server:
        server.script(model, [Turn.calls(ToolCall("echo", {"text": "x"})), Turn.reply("done")])
        llm = app_settings.model_copy(update={"llm_base_url": server.base_url})
        async with running_worker(dev_env.client, llm, sessions, task_queue):
            started = await api.post("/runs", json=agent_run(run_id, model), headers=keys.admin)
            assert started.status_code == 202, started.text
            view = await finished(api, run_id, keys.admin)
            # The CLI, while a worker can answer the status query of the closed run.
            monkeypatch.setenv("DATABASE_URL", app_settings.database_url)
            monkeypatch.setenv("TEMPORAL_ADDRESS",
                               dev_env.client.service_client.config.target_host)  # fmt: skip

            def cli(*argv: str) -> tuple[int, str, str]:
                code = main(list(argv))
                captured = capsys.readouterr()
                return code, captured.out, captured.err

            status = await asyncio.to_thread(cli, "status", run_id)
            status_json = await asyncio.to_thread(cli, "status", run_id, "--json")
            evidence = await asyncio.to_thread(cli, "evidence", run_id)
    expected = {"model": model, "calls": 2, "failed": 0, "input_tokens": 200,
                "output_tokens": 40, "cost": str(EXPECTED_COST)}  # fmt: skip
    assert (view["status"], view["step_index"]) == ("succeeded", 3)
    [usage] = view["usage"]
    assert {**usage, "cost": str(Decimal(usage["cost"]))} == expected
    api_evidence = (await api.get(f"/runs/{run_id}/evidence", headers=keys.admin)).json()
    [usage] = api_evidence["usage"]
    assert (usage["calls"], usage["input_tokens"], Decimal(usage["cost"])) == (
        2, 200, EXPECTED_COST)  # fmt: skip

    line = f"usage {model}: 2 calls, 200 input and 40 output tokens, cost {EXPECTED_COST}"
    code, out, err = status
    assert (code, err) == (0, ""), err
    assert out.startswith(f"run {run_id} (tenant {keys.tenant}): COMPLETED succeeded, step 3/3")
    assert line in out
    code, out, _ = status_json
    [usage] = json.loads(out)["usage"]
    assert (usage["model"], usage["output_tokens"]) == (model, 40)
    code, out, err = evidence
    assert (code, err) == (0, "") and line in out
