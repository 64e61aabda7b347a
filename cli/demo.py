"""The demo scenario: a few runs that show the kernel, governance and control at work.

It seeds the tenant ``acme`` (budget 1.00, every skill) with one WARNED rule, then starts:
a successful run, a run denied at authorization, a run whose budget is exhausted
mid-run by a policy check, and a run paused at its first step that stays paused so it
can be seen in the Web UI and resumed from the CLI. And an agent run of the tenant
``acme-agents``: its model (the local chat server's ``demo-agent`` script, or the real
endpoint's LLM_MODEL when LLM_BASE_URL is set) calls two tools, then ``http``, which the
tenant's rule ``agents-no-http`` blocks before it runs.
"""

import asyncio
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from clients.runs import run_result, start_run
from domain.enums import Authority, PauseReason
from domain.models import RunStatusView
from runtime.chat_completions import ChatCompletionsServer
from runtime.chat_scripts import DEMO_AGENT_MODEL, DEMO_AGENT_SCRIPT
from runtime.settings import Settings
from services import rules, tenants

log = logging.getLogger(__name__)
TENANT = "acme"
AGENTS_TENANT = "acme-agents"  # acme's rule no-unreviewed-llm would block an agent's model


DEMO_RULES = [
    ("warn-on-http", "SKILL_USED", {"skill": "http"}, "WARNED"),
    ("no-unreviewed-llm", "SKILL_USED", {"skill": "llm"}, "BLOCKED"),
]


AGENT_RULES = [("agents-no-http", "SKILL_USED", {"skill": "http"}, "BLOCKED")]


def seed(sessions: sessionmaker[Session]) -> None:
    for tenant, name, demo_rules in ((TENANT, "Acme Corp", DEMO_RULES),
                                     (AGENTS_TENANT, "Acme agents", AGENT_RULES)):  # fmt: skip
        tenants.add_tenant(sessions, tenant, name=name, budget="1.00", exist_ok=True)
        present = {r["name"] for r in rules.list_rules(sessions, tenant)}
        for rule, kind, params, outcome in demo_rules:
            if rule not in present:
                rules.add_rule(sessions, tenant, rule, kind, params, outcome)


def agent_step(model: str | None) -> dict[str, Any]:
    """The demo's agent: triage a ticket with echo, template and http (``model`` None: the
    endpoint's LLM_MODEL)."""
    spec: dict[str, Any] = {
        "system": "You triage support tickets. Use the tools: echo to restate the ticket, "
                  "template to write its priority line, http to check the device status.",
        "prompt": "Ticket 42: the printer on floor 3 is on fire. Triage it.",
        "tools": ["echo", "template", "http"],
        "max_turns": 4,
        "budget": "0.05",
    }  # fmt: skip
    if model is not None:
        spec["model"] = model
    return {"id": "triage", "skill": "agent", "input": spec}


def scenario(tag: str, agent_model: str | None = DEMO_AGENT_MODEL) -> dict[str, dict[str, Any]]:
    echo = [
        {"skill": "echo", "input": {"text": "collect the facts"}},
        {"skill": "template", "input": {"template": "Hello $who", "variables": {"who": "acme"}}},
        {"skill": "echo", "input": {"text": "summarise"}},
    ]
    return {
        "completed": {"run_id": f"demo-ok-{tag}", "tenant_id": TENANT, "steps": echo},
        "denied": {
            "run_id": f"demo-denied-{tag}",
            "tenant_id": TENANT,
            "steps": echo,
            "budget": "50",
        },  # fmt: skip
        "budget_exhausted": {
            "run_id": f"demo-budget-{tag}",
            "tenant_id": TENANT,
            "steps": echo * 4,
            "budget": "0.0003",
            "options": {"policy_check_interval_seconds": 0, "policy_check_min_steps": 1},
        },  # fmt: skip
        "blocked": {
            "run_id": f"demo-blocked-{tag}",
            "tenant_id": TENANT,
            "steps": [echo[0], {"skill": "llm", "input": {"prompt": "draft the reply"}}],
        },
        "paused": {"run_id": f"demo-paused-{tag}", "tenant_id": TENANT, "steps": echo},
        "agent": {
            "run_id": f"demo-agent-{tag}",
            "tenant_id": AGENTS_TENANT,
            "steps": [agent_step(agent_model)],
            "budget": "0.10",
        },
    }


def interpreter() -> str:
    """The Python that runs this process, as an operator would type it: relative to the
    current directory when inside it (``.venv/bin/python``), else absolute."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


async def run_demo_with(
    client: Client,
    sessions: sessionmaker[Session],
    settings: Settings,
    chat: ChatCompletionsServer | None = None,
) -> dict[str, str]:
    """The demo's runs and how each ended; ``chat``: the local chat server, which gets the
    agent's script (None: the agent talks to LLM_BASE_URL's LLM_MODEL)."""
    seed(sessions)
    tag = uuid.uuid4().hex[:6]
    if chat is not None:
        chat.script(DEMO_AGENT_MODEL, DEMO_AGENT_SCRIPT)
    runs = scenario(tag, DEMO_AGENT_MODEL if chat is not None else None)
    pause = {"reason": PauseReason.MANUAL_PAUSE,
             "actor": {"id": "demo", "authority": Authority.TENANT_ADMIN}}  # fmt: skip
    handles = {}
    for name, payload in runs.items():
        signal = ("pause", pause) if name == "paused" else None
        handles[name] = await start_run(client, settings.task_queue, payload, start_signal=signal)
    results: dict[str, str] = {}
    for name, handle in handles.items():
        if name == "paused":
            continue
        r = await run_result(handle)
        results[name] = f"run {r.run_id}: {r.phase} {r.status}" + (
            f" ({r.reason})" if r.reason else ""
        )
    paused_id = runs["paused"]["run_id"]
    for _ in range(50):
        view = await handles["paused"].query("status", result_type=RunStatusView)
        if view.status == "paused":
            break
        await asyncio.sleep(0.1)
    results["paused"] = (
        f"run {paused_id}: {view.phase} {view.status} — see it in the Web UI, then "
        f"`{interpreter()} starter.py resume {paused_id}`"
    )
    return results


async def run_demo(stack, settings: Settings) -> None:  # noqa: ANN001 - runtime.stack.Stack
    try:
        results = await run_demo_with(stack.client, stack.sessions, settings, stack.chat)
    except Exception:
        log.exception("demo failed")
        return
    for name, line in results.items():
        log.info("demo %s: %s", name, line)
    log.info("Temporal Web UI: http://127.0.0.1:%d — Ctrl-C stops", settings.temporal_ui_port)
