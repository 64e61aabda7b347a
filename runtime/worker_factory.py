"""Builds the activity objects and the Worker: the wiring worker.py and the tests share."""

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from activities.candidates import CandidateActivities
from activities.control import ControlActivities
from activities.database_outages import DatabaseOutages
from activities.incidents import IncidentActivities
from activities.policies import PolicyActivities
from activities.reconciliation import ReconcileActivities
from activities.runs import RunActivities
from activities.secret_store import SecretBox
from activities.skills.base import LlmEndpoint, SkillContext
from activities.skills.egress import DeploymentEndpoints, Egress
from activities.skills.registry import SkillRegistry
from activities.steps import StepActivities
from activities.traces import TraceActivities
from domain.egress import parse_rules
from domain.skill_catalog import SkillCatalog
from domain.skill_discovery import installed_catalog
from runtime.sandbox_bytecode import cache_workflow_bytecode
from runtime.settings import Settings
from runtime.worker_options import worker_options
from workflows.promote_candidate import PromoteCandidateWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.run_workflow import RunWorkflow

WORKFLOWS = [RunWorkflow, PromoteCandidateWorkflow, ReconcileWorkflow]

# Modules that are deterministic or only used through activities: import them once,
# outside the sandbox, instead of re-importing them for every workflow run.
PASSTHROUGH = (
    "pydantic", "pydantic_core", "sqlalchemy", "httpx", "domain", "activities", "services", "db",
)  # fmt: skip


def workflow_runner() -> SandboxedWorkflowRunner:
    """The SDK's own sandbox with PASSTHROUGH: what debug mode and plugins (OpenTelemetry)
    recognise and extend. (A runner that skipped the sandbox's serialization-context
    lookups saved ~11 ms of CPU per governed run, ~6 % of all its CPU: not worth an
    SDK-internal interface; README "Reliability", docs/BENCHMARKS.md.)"""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def skill_context(settings: Settings) -> SkillContext:
    return SkillContext(
        llm=LlmEndpoint(
            base_url=settings.llm_base_url,
            api_key=settings.llm_api_key,
            default_model=settings.llm_model,
            price_per_1k_input=settings.llm_price_per_1k_input_tokens,
            price_per_1k_output=settings.llm_price_per_1k_output_tokens,
            default_max_tokens=settings.llm_default_max_tokens,
        ),
        base_cost=settings.skill_base_cost,
    )


def deployment_endpoints(settings: Settings) -> DeploymentEndpoints:
    """The endpoints no step may reach: the Temporal frontend and Web UI ports, the HTTP
    API port and the metrics port, on loopback, on the configured hosts and on this host's
    own name; and the host:port of TEMPORAL_ADDRESS when it is set."""
    ports = (
        settings.temporal_port,
        settings.temporal_ui_port,
        settings.temporal_http_port,
        settings.temporal_metrics_port,
        settings.http_port,
        settings.metrics_port,
    )
    hosts = [settings.http_host, settings.metrics_host, socket.gethostname()]
    exact: list[tuple[str, int]] = []
    if settings.temporal_address:
        host, _, port = settings.temporal_address.rpartition(":")
        host = host.strip("[]")
        hosts.append(host)
        if port.isdigit():
            exact.append((host, int(port)))
    return DeploymentEndpoints(ports=ports, hosts=tuple(hosts), exact=tuple(exact))


def egress(settings: Settings) -> Egress:
    """The worker's egress settings; EGRESS_ALLOW that cannot be read fails at start."""
    return Egress(
        operator_rules=parse_rules(settings.egress_allow, "EGRESS_ALLOW"),
        deployment=deployment_endpoints(settings),
        exclusive=settings.egress_allow_exclusive,
        tls=httpx.create_ssl_context(),
    )


def step_activities(
    settings: Settings, sessions: sessionmaker[Session], skills: SkillCatalog | None = None
) -> StepActivities:
    return StepActivities(
        sessions,
        skill_context(settings),
        registry=SkillRegistry(skills),
        egress=egress(settings),
        secret_box=SecretBox.of_deployment(settings.secrets_key, settings.data_dir),
        max_steps_in_flight=settings.max_steps_in_flight_per_tenant,
    )


def build_activities(
    settings: Settings,
    sessions: sessionmaker[Session],
    http: Any = None,
    *,
    skills: SkillCatalog | None = None,
) -> list:
    """Every activity of governed-runs, bound to its dependencies; ``skills``: the skill
    catalog runs.open checks and steps.execute runs (default: the installed one, discovered
    here when the worker starts).

    ``http`` is ignored (skills open a client per call, activities.skills.egress); it stays
    so that callers written for the shared client need not change."""
    skills = skills if skills is not None else installed_catalog()
    runs = RunActivities(sessions, settings.run_defaults(), settings.max_runs_in_flight_per_tenant,
                         skills=skills)  # fmt: skip
    traces = TraceActivities(sessions)
    policies = PolicyActivities(sessions)
    incidents = IncidentActivities(sessions)
    audit = AuditActivities(sessions)
    control = ControlActivities(sessions)
    steps = step_activities(settings, sessions, skills)
    candidates = CandidateActivities(sessions, settings.max_signal_count)
    reconcile = ReconcileActivities(sessions, settings.retention_policy())
    return [
        runs.open,
        runs.transition,
        runs.finalize,
        runs.mark_degraded,
        traces.start,
        traces.complete,
        traces.revert_completion,
        policies.evaluate,
        policies.rollback_evaluation,
        incidents.create_for_run,
        incidents.rollback,
        audit.amend_contract,
        audit.reconcile_run,
        control.check_policy,
        control.record_pause,
        control.update_pause,
        control.record_refusal,
        steps.execute,
        candidates.load,
        candidates.apply_decision,
        candidates.record_failure,
        candidates.purge_orchestration_log,
        reconcile.scan,
        reconcile.describe_runs,
        reconcile.cross_check,
        reconcile.record,
        reconcile.purge_expired,
        reconcile.report_failure,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    sessions: sessionmaker[Session],
    http: Any = None,
    *,
    task_queue: str | None = None,
    activities: list | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> Worker:
    """The worker of ``settings.task_queue`` (or ``task_queue``) with the options of
    runtime.worker_options: slots, graceful shutdown, sticky queue, heartbeats, cache,
    deployment version, held patches."""
    cache_workflow_bytecode(WORKFLOWS)
    options = worker_options(settings)
    if executor is not None:
        options["activity_executor"] = executor
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities if activities is not None else build_activities(settings, sessions),
        workflow_runner=workflow_runner(),
        interceptors=[DatabaseOutages()],  # an outage fails an activity as DatabaseUnavailable
        **options,
    )
