"""The one settings object. Built at the edges (worker, starter, migrations, tests)."""

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.enums import ObservabilityMode, PauseTimeoutBehavior
from domain.models import RunConfig
from domain.retention import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_TTL_SECONDS,
    RetentionPolicy,
    blob_ttl_floor,
)

# No Path.resolve() at import: the workflow sandbox re-imports this module and refuses it
# (a module's __file__ is absolute already).
CHECKOUT_DATA_DIR = Path(__file__).parent.parent / "data"
# Temporal's default per-payload limit (the server's limit.blobSize.error): a threshold above
# it would never leave a payload to the claim check that Temporal accepts inline.
MAX_CLAIM_CHECK_THRESHOLD_BYTES = 2 * 1024 * 1024


class Settings(BaseSettings):
    """Every knob of governed-runs, read from the environment (and ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # The checkout's data/ (not the current directory's): a CLI started from elsewhere
    # finds the worker's database instead of creating an empty one.
    data_dir: Path = CHECKOUT_DATA_DIR
    # production: TEMPORAL_ADDRESS and DATABASE_URL must be set (runtime.stack).
    environment: Literal["development", "production"] = "development"
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in DATA_DIR"
    )
    temporal_address: str | None = Field(
        default=None, description="host:port of a Temporal server; unset: embedded dev server"
    )
    temporal_namespace: str = "default"
    task_queue: str = "governed-runs"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    # The embedded server's HTTP API and metrics ports, pinned (not random) so that the
    # egress policy protects them like the frontend and the UI.
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244

    observability_mode: ObservabilityMode = ObservabilityMode.DEGRADED
    run_timeout_seconds: int = Field(default=7200, gt=0)
    finalize_grace_seconds: int = Field(default=300, ge=0)
    mid_execution_policy_check_enabled: bool = True
    policy_check_interval_seconds: int = Field(default=30, ge=0)
    policy_check_min_steps: int = Field(default=3, ge=1)
    pause_sla_seconds: int = Field(default=3600, gt=0)
    pause_notify_before_timeout_seconds: int = Field(default=300, ge=0)
    pause_timeout_behavior: PauseTimeoutBehavior = PauseTimeoutBehavior.TERMINATE
    # Pause a run once (BUDGET_WARNING) when its cost reaches this % of its budget (unset: never).
    budget_warning_percent: int | None = Field(default=None, ge=1, le=100)

    llm_base_url: str = "http://127.0.0.1:8081/v1"
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_price_per_1k_input_tokens: Decimal = Decimal("0.00015")
    llm_price_per_1k_output_tokens: Decimal = Decimal("0.0006")
    # Sent as max_tokens when a step names none, and reserved against the budget before it.
    llm_default_max_tokens: int = Field(default=1024, ge=1, le=1_000_000)
    skill_base_cost: Decimal = Decimal("0.0001")

    activity_threads: int = Field(default=32, ge=1)
    search_attributes_enabled: bool = Field(
        default=True, description="mirror TenantId/RunPhase/RunStatus (off: server lacks them)"
    )

    # The worker (runtime.worker_options, runtime.worker_versioning; README "Reliability").
    # ACTIVITY_THREADS above: slots for steps (regular activities); these: slots for the
    # governance writes (local activities). The executor has a thread for every slot.
    local_activity_threads: int = Field(default=16, ge=1)
    # SIGTERM: activities in flight get this long to finish before they are cancelled.
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0, le=3600)
    # A dead worker's sticky queue hands a run's next workflow task on after this long.
    sticky_queue_timeout_seconds: float = Field(default=2.0, gt=0, le=600)
    # Heartbeats reach the server at least this often (a step heartbeats 4x per timeout).
    heartbeat_throttle_seconds: float = Field(default=1.0, gt=0, le=60)
    # Runs kept in memory between their workflow tasks, ~0.23 MB each (1,000: a worker with
    # 10,000 paused runs stays under 500 MB); an evicted run replays at its next task.
    max_cached_workflows: int = Field(default=1000, ge=0)
    # Workflow tasks one worker holds at once (the SDK's default: 100): each holds the GIL
    # in turn, so more of them only makes each slower (past the workflow task timeout).
    workflow_task_slots: int = Field(default=16, ge=2)
    # The Worker Deployment Version every worker reports; the build id defaults to a hash of
    # the workflow code (workflows/, domain/). WORKER_VERSIONING=true opts into Worker
    # Versioning (a new version gets tasks once made current); the behaviour applies to
    # every workflow. HELD_PATCHES: patch ids new runs must not take yet.
    worker_deployment_name: str = Field(default="governed-runs", pattern=r"^[^.\s]{1,200}$")
    worker_build_id: str | None = Field(default=None, pattern=r"^\S{1,200}$")
    worker_versioning: bool = False
    worker_versioning_behavior: Literal["pinned", "auto_upgrade"] = "pinned"
    held_patches: list[str] = Field(default_factory=list)

    # HTTP API (api/): served beside the worker by `python worker.py`, or alone by
    # `python -m api`. HTTP_ENABLED=false keeps the worker without it.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    http_enabled: bool = True
    # The Prometheus /metrics endpoint of the worker (observability.prometheus), beside any
    # OTLP export. METRICS_PORT=0: a free port, logged. Protected from egress like the API.
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    # Security (README "Security model"). Egress of skills that call out: deny-by-default
    # ranges (loopback, link-local, private, multicast) and the worker's own ports are
    # refused unless an allow-list entry names them; EGRESS_ALLOW is the operator's list for
    # every tenant, added to each tenant's own (domain.egress rules, e.g.
    # '[{"scheme": "https", "host": "api.example.com", "port": 443}]').
    egress_allow: list[dict] = Field(default_factory=list)
    # true: only allow-listed targets are reachable, public hosts included.
    egress_allow_exclusive: bool = False
    # Fernet key (urlsafe base64, 32 bytes) for tenant secrets; unset: a key file
    # DATA_DIR/secrets.key, created on first use with mode 0600.
    secrets_key: str | None = None
    # Comma-separated Fernet keys that encrypt every Temporal payload of the client and the
    # worker (the first encrypts, all decrypt: rotation); unset: payloads in clear
    # (runtime.payload_codec; README "Security model").
    payload_encryption_keys: str | None = None
    # The claim check (runtime.claim_check; README "Payloads"): a Temporal payload larger than
    # this many bytes (after encryption) goes to the payload_blobs table and the history
    # holds a reference. false: nothing new is stored (references in histories still read).
    claim_check_enabled: bool = True
    claim_check_threshold_bytes: int = 32 * 1024
    http_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The promotion authority a key acts with when the key names none: key authority →
    # candidate authority type (domain.candidates); an authority not listed may not promote.
    promotion_authorities: dict[str, str] = Field(
        default_factory=lambda: {
            "TENANT_ADMIN": "HUMAN_OPERATOR",
            "FOUNDER_ONLY": "HUMAN_OPERATOR",
        }
    )
    # Per-tenant defaults (a tenant's own setting wins; null here = no limit).
    max_runs_in_flight_per_tenant: int | None = Field(default=100, ge=1)
    max_steps_in_flight_per_tenant: int | None = Field(default=16, ge=1)
    max_signal_count: int = Field(default=10_000, ge=1)

    # Reconciliation, events and alerts (runtime.schedules, events.reactor, events.handlers).
    reconcile_interval_seconds: int = Field(default=60, ge=1)
    reconcile_page_size: int = Field(default=500, ge=1, le=5000)
    reconcile_ack_lookback_seconds: int = Field(default=3600, ge=0)
    reconcile_schedule_enabled: bool = True
    dedup_window_seconds: int = Field(default=60, ge=0)
    max_alerts_per_tenant_per_hour: int = Field(default=100, ge=0)
    alert_domain_cooldowns: dict[str, int] = Field(default_factory=dict)
    alert_fatigue_enabled: bool = True
    audit_alerts_enabled: bool = True
    event_reactor_enabled: bool = True
    reactor_poll_interval_seconds: float = Field(default=0.5, gt=0)
    reactor_batch_size: int = Field(default=100, ge=1)
    reactor_retry_base_seconds: float = Field(default=1.0, gt=0)
    reactor_retry_max_seconds: float = Field(default=300.0, gt=0)
    reactor_lease_seconds: float = Field(default=60.0, gt=0)
    reactor_sweep_interval_seconds: float = Field(default=30.0, gt=0)
    reactor_sweep_overlap_seconds: float = Field(default=300.0, ge=0)
    reactor_heartbeat_interval_seconds: float = Field(default=30.0, gt=0)
    reactor_heartbeat_miss_threshold: int = Field(default=3, ge=1)
    # Alert sinks (events.notifications): their own reactor group, alert-sinks.
    alert_sinks_enabled: bool = True
    alert_sink_unhealthy_after: int = Field(default=5, ge=1)  # failures in a row
    alert_sink_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    alert_sink_concurrency: int = Field(default=8, ge=1, le=64)

    # Retention (services.retention): each reconciliation purges, in pages, the rows older
    # than their TTL in seconds (default 30 days; 0: keep forever). The audit ledger,
    # traces, acks, incidents and expectations are kept (README "Retention": archiving).
    # Outbox events (and their delivery rows) must outlive the reactor's sweep overlap.
    retention_outbox_events_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=0)
    retention_findings_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=0)
    retention_suppressed_alerts_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=0)
    # Idempotency-ledger rows of finalized runs only, counted from the run's finalization.
    retention_idempotency_ledger_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=0)
    # Claim-check blobs, counted from their last use; at least the longest run + the
    # namespace's history retention + a day (checked when the worker connects).
    retention_payload_blobs_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=0)
    retention_page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=5000)  # rows per txn

    @field_validator("claim_check_threshold_bytes")
    @classmethod
    def _positive_threshold(cls, value: int) -> int:
        if value < 1 or value > MAX_CLAIM_CHECK_THRESHOLD_BYTES:
            raise ValueError(
                f"CLAIM_CHECK_THRESHOLD_BYTES={value} must be between 1 and "
                f"{MAX_CLAIM_CHECK_THRESHOLD_BYTES} bytes (Temporal refuses a larger payload); "
                "to turn the claim check off, set CLAIM_CHECK_ENABLED=false"
            )
        return value

    @model_validator(mode="after")
    def _blobs_outlive_their_runs(self) -> "Settings":
        ttl = self.retention_payload_blobs_seconds
        floor = blob_ttl_floor(self.longest_run_seconds())
        if ttl and ttl < floor:
            raise ValueError(
                f"RETENTION_PAYLOAD_BLOBS_SECONDS={ttl} must be at least {floor:g}: "
                f"RUN_TIMEOUT_SECONDS={self.run_timeout_seconds} + "
                f"FINALIZE_GRACE_SECONDS={self.finalize_grace_seconds} + a day, plus the "
                "namespace's history retention (or 0: keep forever): a run's history "
                "references its claim-check blobs"
            )
        return self

    @model_validator(mode="after")
    def _outbox_ttl_outlives_the_sweep(self) -> "Settings":
        ttl, overlap = self.retention_outbox_events_seconds, self.reactor_sweep_overlap_seconds
        if ttl and ttl <= overlap:
            raise ValueError(
                f"RETENTION_OUTBOX_EVENTS_SECONDS={ttl} must exceed "
                f"REACTOR_SWEEP_OVERLAP_SECONDS={overlap:g} (or be 0: keep forever): the "
                "reactor re-reads events that recent for late commits"
            )
        return self

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            outbox_events_seconds=self.retention_outbox_events_seconds,
            findings_seconds=self.retention_findings_seconds,
            suppressed_alerts_seconds=self.retention_suppressed_alerts_seconds,
            idempotency_ledger_seconds=self.retention_idempotency_ledger_seconds,
            payload_blobs_seconds=self.retention_payload_blobs_seconds,
            sweep_overlap_seconds=self.reactor_sweep_overlap_seconds,
            page_size=self.retention_page_size,
        )

    def longest_run_seconds(self) -> int:
        """How long a run may stay open: its timeout (enforced in workflow time), then the
        grace its finalization has."""
        return self.run_timeout_seconds + self.finalize_grace_seconds

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'governed_runs.db').resolve()}"

    def run_defaults(self) -> RunConfig:
        """The worker's governance defaults; a tenant's own values go over them, and a run's
        options may only tighten the result (domain.governance)."""
        return RunConfig(
            observability_mode=self.observability_mode,
            policy_check_enabled=self.mid_execution_policy_check_enabled,
            policy_check_interval_seconds=self.policy_check_interval_seconds,
            policy_check_min_steps=self.policy_check_min_steps,
            pause_sla_seconds=self.pause_sla_seconds,
            pause_notify_before_seconds=self.pause_notify_before_timeout_seconds,
            pause_timeout_behavior=self.pause_timeout_behavior,
            run_timeout_seconds=self.run_timeout_seconds,
            finalize_grace_seconds=self.finalize_grace_seconds,
            search_attributes=self.search_attributes_enabled,
            budget_warning_percent=self.budget_warning_percent,
        )
