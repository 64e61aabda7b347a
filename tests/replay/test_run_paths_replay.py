"""Every control, governance and cancellation path of RunWorkflow (and PromoteCandidateWorkflow's
activity failure) has a recorded history, taken at the production check cadence on a worker
wired like worker.py's, and each replays on the production worker's Replayer.

Histories: tests/histories/run-paths and tests/histories/promote_candidate-paths
(tests/replay/record_path_histories.py), and ReconcileWorkflow's continue-as-new chain of
tests/histories/reconcile. The Replayer is read from a Worker that
runtime.worker_factory.build_worker builds on a client connected as runtime.stack connects
(tests/replay/production_worker.py): its workflows, sandbox runner, interceptors and
plugins — the client's OpenTelemetry plugin (RunTracingPlugin: the SDK's plugin and the
run-context interceptors around its own), the worker's interceptors — and data converter;
once with tracing on and once off (a deploy may turn it either way while runs are open).
The histories were recorded with the SDK's former TracingInterceptor: its ``_tracer-data``
header is the one the plugin reads, and they replay on the plugin.
Each path's check reads the history (and the recorder's manifest) for what makes it that
path, and refuses every other recorded history.
"""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.opentelemetry import (
    OpenTelemetryInterceptor,
    OpenTelemetryPlugin,
    TracingInterceptor,
)
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from activities.database_outages import DatabaseOutages
from db.engine import make_engine, make_session_factory
from observability.tracing import (
    HEADER,
    RunContextInterceptor,
    RunTracingPlugin,
    WorkflowSpanInterceptor,
)
from runtime.claim_check import ClaimCheckCodec
from runtime.payload_codec import CodecChain
from runtime.settings import Settings
from runtime.temporal_client import connect
from runtime.worker_factory import WORKFLOWS, build_worker
from services.incidents import incident_id_for
from tests.replay.production_worker import (
    production_converter,
    replayer_of,
    telemetry,
    traced_client,
)
from tests.replay.recorded import Recorded

pytestmark = pytest.mark.timeout(120)

RUN_PATHS = Recorded("run-paths")
PROMOTE_PATHS = Recorded("promote_candidate-paths")
RECONCILE = Recorded("reconcile")
TRACER_HEADER = TracingInterceptor().header_key  # what the recorded histories carry
DEFAULT = {name: Settings.model_fields[name].default
           for name in ("policy_check_interval_seconds", "policy_check_min_steps")}  # fmt: skip


# ----- reading a history -------------------------------------------------------------


@dataclass
class Write:
    """One activity of the history: a local activity's marker or a scheduled activity."""

    type: str
    event_id: int  # its marker, or its ActivityTaskScheduled
    local: bool
    failed: bool = False
    non_retryable: bool = False
    message: str = ""
    result: Any = None
    closed_at: int | None = None  # a scheduled activity's closing event


def _json(payloads: Any) -> Any:
    return json.loads(payloads[0].data) if payloads and payloads[0].data else None


class History:
    """A recorded history and its manifest entry, read for what the run did."""

    def __init__(self, recorded: Recorded, name: str) -> None:
        self.name = name
        self.entry: dict[str, Any] = recorded.manifest[name]
        self.history = recorded.history(name)
        self.events = list(self.history.events)

    @cached_property
    def writes(self) -> list[Write]:
        found: dict[int, Write] = {}
        for e in self.events:
            if e.HasField("marker_recorded_event_attributes"):
                attrs = e.marker_recorded_event_attributes
                if "data" not in attrs.details:
                    continue  # a patch marker
                data = _json(attrs.details["data"].payloads)
                failure = attrs.failure if attrs.HasField("failure") else None
                result = attrs.details["result"].payloads if "result" in attrs.details else None
                found[e.event_id] = Write(data["activity_type"], e.event_id, True,
                                          failed=failure is not None,
                                          message=failure.message if failure else "",
                                          result=_json(result))  # fmt: skip
            elif e.HasField("activity_task_scheduled_event_attributes"):
                attrs = e.activity_task_scheduled_event_attributes
                found[e.event_id] = Write(attrs.activity_type.name, e.event_id, False)
            for field in ("completed", "failed", "canceled", "timed_out"):
                name = f"activity_task_{field}_event_attributes"
                if not e.HasField(name):
                    continue
                attrs = getattr(e, name)
                write = found[attrs.scheduled_event_id]
                write.closed_at = e.event_id
                if field == "completed":
                    write.result = _json(attrs.result.payloads)
                elif field == "failed":
                    write.failed, write.message = True, attrs.failure.message
                    write.non_retryable = attrs.failure.application_failure_info.non_retryable
        return list(found.values())

    def of(self, activity_type: str) -> list[Write]:
        return [w for w in self.writes if w.type == activity_type]

    def event_ids(self, field: str) -> list[int]:
        return [e.event_id for e in self.events if e.HasField(f"{field}_event_attributes")]

    def signals(self, name: str) -> list[tuple[int, Any]]:
        return [(e.event_id, _json(e.workflow_execution_signaled_event_attributes.input.payloads))
                for e in self.events if e.HasField("workflow_execution_signaled_event_attributes")
                and e.workflow_execution_signaled_event_attributes.signal_name == name]  # fmt: skip

    def updates(self, name: str) -> list[int]:
        field = "workflow_execution_update_accepted_event_attributes"
        return [e.event_id for e in self.events if e.HasField(field)
                and getattr(e, field).accepted_request.input.name == name]  # fmt: skip

    @property
    def closed_as(self) -> str:
        return self.events[-1].WhichOneof("attributes").removesuffix("_event_attributes")

    @property
    def run_id(self) -> str:
        return self.entry["run_id"]

    @property
    def status(self) -> str | None:
        return self.entry["result"].get("status")

    def opened(self) -> Write:
        return one([w for w in self.of("runs.open") if not w.failed], "runs.open")

    def finalized(self) -> dict[str, Any]:
        return one([w for w in self.of("runs.finalize") if not w.failed], "runs.finalize").result

    def steps(self, before: int | None = None) -> list[Write]:
        return [w for w in self.of("steps.execute") if before is None or w.event_id < before]


def one(items: list, what: str) -> Any:
    assert len(items) == 1, f"expected one {what}, found {len(items)}"
    return items[0]


# ----- what makes each path that path ------------------------------------------------


def completed(p: History) -> None:
    """The production cadence: six steps, the check at open and none mid-run."""
    assert p.status == "succeeded" and len(p.steps()) == 6
    assert not p.of("control.check_policy"), "no check is due before 30 s and 3 steps"
    assert not any(w.failed for w in p.writes) and not p.event_ids("workflow_execution_signaled")


def escalated(p: History) -> None:
    pause = one(p.of("control.record_pause"), "pause")
    incident = one([w for w in p.of("incidents.create_for_run") if w.event_id > pause.event_id],
                   "incident while paused")  # fmt: skip
    assert incident.result["incident_id"] == incident_id_for(p.run_id, "escalate_pause:1")
    assert one(p.updates("resume_run"), "resume_run") > incident.event_id
    assert p.entry["pauses"] == [{"reason": "MANUAL_PAUSE", "resolution": "RESUMED",
                                  "warned": True, "escalated": True}]  # fmt: skip
    assert [i["category"] for i in p.entry["incidents"]] == ["PAUSE_ESCALATION"]
    assert p.status == "succeeded"


def checks(p: History, decision: str) -> list[Write]:
    return [w for w in p.of("control.check_policy") if (w.result or {}).get("decision") == decision]


def policy_change(p: History) -> None:
    check = one(checks(p, "PAUSE"), "pausing check")
    assert check.result["violations"] == ["POLICY_DISABLED"]
    assert len(p.steps(before=check.event_id)) == DEFAULT["policy_check_min_steps"]
    pause = one(p.of("control.record_pause"), "pause")
    assert pause.event_id > check.event_id
    resumes = [s for s in p.signals("resume") if s[0] > pause.event_id]
    resumed, by = one(resumes, "resume after the pause")
    assert by["actor"]["authority"] == "TENANT_ADMIN"
    assert [x["reason"] for x in p.entry["pauses"]] == ["POLICY_CHANGE"]
    assert p.status == "succeeded" and len(p.steps()) == len(p.steps(before=resumed)) + 2


def tenant_suspended(p: History) -> None:
    check = one(checks(p, "TERMINATE"), "terminating check")
    assert check.result["violations"] == ["TENANT_SUSPENDED"]
    assert len(p.steps()) == len(p.steps(before=check.event_id)) == DEFAULT[
        "policy_check_min_steps"]  # fmt: skip
    assert p.status == "failed_policy" and "TENANT_SUSPENDED" in p.finalized()["reason"]


def paused_mid_run(p: History) -> None:
    signal, _ = one(p.signals("pause"), "pause signal")
    steps = p.steps()
    assert steps and signal > steps[0].event_id, "the pause arrived while the run was executing"
    pause = one(p.of("control.record_pause"), "pause")
    resume, by = one(p.signals("resume"), "resume signal")
    assert signal < pause.event_id < resume and by["actor"]["authority"] == "TENANT_USER"
    assert p.status == "succeeded" and len(steps) == 4


def stopped_mid_run(p: History) -> None:
    stop = one(p.updates("stop_run"), "stop_run")
    running = [w for w in p.steps() if w.event_id < stop < (w.closed_at or 0)]
    assert running, "the stop arrived while a step ran"
    assert not p.of("control.record_pause") and len(p.steps()) == 2
    final = p.finalized()
    assert final["status"] == "cancelled" and final["reason"].startswith("stopped by ops-admin")


def refused_signals(p: History) -> None:
    pause = one(p.of("control.record_pause"), "pause")
    refusals = p.of("control.record_refusal")
    assert len(refusals) == 4 and all(r.event_id > pause.event_id for r in refusals)
    sent = [(name, body) for name in ("resume", "pause", "approve") for _, body in p.signals(name)]
    assert ("pause", "now") in sent and ("resume", {"actor": "nobody"}) in sent
    reasons = p.entry["refusals"]
    assert [r.split(":")[0] for r in reasons] == [
        "TENANT_USER may not resume a BUDGET_WARNING pause (allowed", "malformed",
        "malformed", "no approval is awaited"]  # fmt: skip
    assert [x["reason"] for x in p.entry["pauses"]] == ["BUDGET_WARNING"]
    assert p.status == "succeeded"


def two_pauses(p: History) -> None:
    assert len(p.of("control.record_pause")) == 2
    assert p.signals("pause") and p.signals("resume"), "the first: signals"
    assert p.updates("pause_run") and p.updates("resume_run"), "the second: Updates"
    assert [x["resolution"] for x in p.entry["pauses"]] == ["RESUMED", "RESUMED"]
    assert p.status == "succeeded"


def step_activity_error(p: History) -> None:
    failed = one([w for w in p.steps() if w.failed], "failed step activity")
    assert failed.non_retryable and failed.closed_at is not None
    final = p.finalized()
    assert final["status"] == "failed" and "could not run" in final["reason"]


def cancelled_during_step(p: History) -> None:
    cancel = one(p.event_ids("workflow_execution_cancel_requested"), "cancel")
    assert [w for w in p.steps() if w.event_id < cancel < (w.closed_at or cancel + 1)]
    assert p.event_ids("activity_task_cancel_requested")
    assert not p.of("policies.evaluate"), "cancelled before governance"
    assert p.finalized()["status"] == "cancelled" and p.closed_as == "workflow_execution_canceled"


def cancelled_during_governance(p: History) -> None:
    cancel = one(p.event_ids("workflow_execution_cancel_requested"), "cancel")
    evaluated = one([w for w in p.of("policies.evaluate") if not w.failed], "evaluation")
    assert evaluated.event_id < cancel
    undone = {w.type for w in p.writes if w.event_id > cancel}
    assert {"incidents.rollback", "policies.rollback_evaluation"} <= undone
    assert p.finalized()["status"] == "cancelled" and p.closed_as == "workflow_execution_canceled"


def cancelled_before_open(p: History) -> None:
    cancel = one(p.event_ids("workflow_execution_cancel_requested"), "cancel")
    assert cancel < p.event_ids("workflow_task_started")[0], "before any worker took it"
    assert p.opened() and not p.steps()
    assert p.finalized()["status"] == "cancelled" and p.closed_as == "workflow_execution_canceled"
    assert p.entry["run"] == {"phase": "FAILED", "status": "cancelled", "finalized": True}


def permissive_trace_broken(p: History) -> None:
    assert p.opened().result["config"]["observability_mode"] == "PERMISSIVE"
    assert one(p.of("traces.start"), "trace start").failed
    assert not p.of("runs.mark_degraded") and not p.of("traces.complete")
    assert p.of("audit.reconcile_run"), "an untraced run reconciles itself"
    assert p.status == "succeeded" and len(p.steps()) == 3


def rolled_back_before_governance(p: History) -> None:
    evaluation = one(p.of("policies.evaluate"), "evaluation")
    assert evaluation.failed
    after = [w.type for w in p.writes if w.event_id > evaluation.event_id]
    assert after[:2] == ["policies.rollback_evaluation", "runs.transition"]
    assert p.finalized()["reason"].startswith("governance rolled back")
    assert p.entry["result"]["rolled_back"] is True


def promote_activity_error(p: History) -> None:
    assert not one(p.of("candidates.load"), "load").failed
    applied = one(p.of("candidates.apply_decision"), "apply_decision")
    assert applied.failed and p.closed_as == "workflow_execution_failed"
    failure = p.events[-1].workflow_execution_failed_event_attributes.failure
    assert applied.message in failure.message and p.entry["outcome"]["failed"] is True


def continued_as_new(p: History) -> None:
    assert p.closed_as == "workflow_execution_continued_as_new"


Check = Callable[[History], None]
# The paths of issue 17 (10), each with the recorded history that takes it.
PATHS: dict[str, tuple[Recorded, str, Check]] = {
    "production check cadence": (RUN_PATHS, "completed", completed),
    "ESCALATE": (RUN_PATHS, "escalated", escalated),
    "POLICY_CHANGE pause": (RUN_PATHS, "policy_change", policy_change),
    "tenant suspended": (RUN_PATHS, "tenant_suspended", tenant_suspended),
    "mid-run pause": (RUN_PATHS, "paused_mid_run", paused_mid_run),
    "mid-run stop": (RUN_PATHS, "stopped_mid_run", stopped_mid_run),
    "refused and malformed signals": (RUN_PATHS, "refused_signals", refused_signals),
    "more than one pause": (RUN_PATHS, "two_pauses", two_pauses),
    "step ActivityError": (RUN_PATHS, "step_activity_error", step_activity_error),
    "cancel during a step": (RUN_PATHS, "cancelled_during_step", cancelled_during_step),
    "cancel during governance": (RUN_PATHS, "cancelled_during_governance",
                                 cancelled_during_governance),
    "cancel before open": (RUN_PATHS, "cancelled_before_open", cancelled_before_open),
    "PERMISSIVE": (RUN_PATHS, "permissive_trace_broken", permissive_trace_broken),
    "rollback before the first governance write": (RUN_PATHS, "rolled_back_before_governance",
                                                   rolled_back_before_governance),
    "promote's ActivityError": (PROMOTE_PATHS, "promote_activity_error", promote_activity_error),
    "reconcile after continue-as-new": (RECONCILE, "continued", continued_as_new),
}  # fmt: skip
RECORDED = [(RUN_PATHS, n) for n in sorted(RUN_PATHS.manifest)] + [
    (PROMOTE_PATHS, n) for n in sorted(PROMOTE_PATHS.manifest)
] + [(RECONCILE, "continued"), (RECONCILE, "continued_last")]  # fmt: skip


def test_every_path_has_its_recorded_history():
    missing = [path for path, (recorded, name, _) in PATHS.items()
               if name not in recorded.manifest
               or not (recorded.folder / f"{name}.json").exists()]  # fmt: skip
    assert missing == []
    assert set(RUN_PATHS.manifest) == {name for r, name, _ in PATHS.values() if r is RUN_PATHS}


@pytest.mark.parametrize("path", list(PATHS))
def test_the_history_took_its_path(path):
    recorded, name, check = PATHS[path]
    check(History(recorded, name))


@pytest.mark.parametrize("path", list(PATHS))
def test_no_other_history_passes_for_that_path(path):
    recorded, name, check = PATHS[path]
    others = [n for n in recorded.manifest if n != name]
    passed = []
    for other in others:
        try:
            check(History(recorded, other))
        except AssertionError:
            continue
        passed.append(other)
    assert passed == []


@pytest.mark.parametrize("name", sorted(RUN_PATHS.manifest))
def test_recorded_at_the_production_cadence_with_the_tracing_interceptor(name):
    assert TRACER_HEADER == HEADER, "the plugin reads the header the histories carry"
    p = History(RUN_PATHS, name)
    config = p.opened().result["config"]
    assert {k: config[k] for k in DEFAULT} == DEFAULT
    assert TRACER_HEADER in p.events[0].workflow_execution_started_event_attributes.header.fields
    scheduled = "activity_task_scheduled_event_attributes"
    assert all(TRACER_HEADER in getattr(e, scheduled).header.fields
               for e in p.events if e.HasField(scheduled))  # fmt: skip


# ----- replayed on the production worker's Replayer ----------------------------------


@pytest.fixture(scope="module")
async def production_replayers(dev_env, tmp_path_factory) -> dict[bool, Replayer]:
    """{traced: the Replayer of the Worker worker.py would build} (never started)."""
    tmp = tmp_path_factory.mktemp("production-worker")
    settings = Settings(_env_file=None, data_dir=tmp, database_url=f"sqlite:///{tmp}/idle.db")
    sessions = make_session_factory(make_engine(settings.database_url))
    target = dev_env.client.service_client.config.target_host
    replayers = {}
    for traced in (True, False):
        converter = production_converter(settings, sessions)
        client = await connect(target, dev_env.client.namespace,
                               codec=converter.payload_codec)  # fmt: skip
        worker = build_worker(traced_client(client, telemetry(traced)), settings, sessions)
        replayers[traced] = replayer_of(worker)
    return replayers


def test_the_replayer_runs_the_workers_interceptors_runner_and_workflows(production_replayers):
    tracing = [RunContextInterceptor, OpenTelemetryInterceptor, WorkflowSpanInterceptor]
    for traced, replayer in production_replayers.items():
        config = replayer.config(active_config=True)  # once the plugins configured it
        kinds = [type(i) for i in config["interceptors"]]
        assert DatabaseOutages in kinds
        assert [k for k in kinds if k in tracing] == (tracing if traced else [])
        assert [type(p) for p in replayer.plugins] == ([RunTracingPlugin] if traced else [])
        assert all(isinstance(p, OpenTelemetryPlugin) for p in replayer.plugins)
        runner = config["workflow_runner"]
        assert isinstance(runner, SandboxedWorkflowRunner)
        assert ("opentelemetry" in runner.restrictions.passthrough_modules) is traced
        assert config["workflows"] == WORKFLOWS
        codec = config["data_converter"].payload_codec  # the production chain: claim check
        assert isinstance(codec, CodecChain)
        assert [type(c) for c in codec.codecs] == [ClaimCheckCodec]


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
@pytest.mark.parametrize(("recorded", "name"), RECORDED,
                         ids=[f"{r.folder.name}/{n}" for r, n in RECORDED])  # fmt: skip
async def test_history_replays_on_the_production_worker(production_replayers, traced, recorded,
                                                        name):  # fmt: skip
    result = await production_replayers[traced].replay_workflow(
        recorded.history(name), raise_on_replay_failure=False
    )
    assert result.replay_failure is None, result.replay_failure


def with_cadence(recorded: Recorded, name: str, interval: int, min_steps: int) -> WorkflowHistory:
    """The history as if its run had opened with another check cadence (the recorded result
    of runs.open rewritten): what the run's commands depend on."""
    raw = json.loads((recorded.folder / f"{name}.json").read_text())
    for event in raw["events"]:
        details = event.get("markerRecordedEventAttributes", {}).get("details", {})
        if "result" not in details or "data" not in details:
            continue
        if json.loads(base64.b64decode(details["data"]["payloads"][0]["data"]))[
                "activity_type"] != "runs.open":  # fmt: skip
            continue
        payload = details["result"]["payloads"][0]
        opened = json.loads(base64.b64decode(payload["data"]))
        opened["config"].update(policy_check_interval_seconds=interval,
                                policy_check_min_steps=min_steps)  # fmt: skip
        payload["data"] = base64.b64encode(json.dumps(opened).encode()).decode()
    return WorkflowHistory.from_json(recorded.manifest[name]["workflow_id"], raw)


async def test_the_every_step_cadence_would_not_replay_a_production_history(
    production_replayers,
):
    """The cadence decides the run's commands: the run recorded at the production cadence
    (no check after the one at open) does not replay once its run opened with a check
    before every step — what every history recorded before these had."""
    replayer = production_replayers[True]
    same = with_cadence(RUN_PATHS, "completed", DEFAULT["policy_check_interval_seconds"],
                        DEFAULT["policy_check_min_steps"])  # fmt: skip
    unchanged = await replayer.replay_workflow(same, raise_on_replay_failure=False)
    assert unchanged.replay_failure is None, unchanged.replay_failure
    every_step = with_cadence(RUN_PATHS, "completed", interval=0, min_steps=1)
    result = await replayer.replay_workflow(every_step, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, NondeterminismError), result.replay_failure
