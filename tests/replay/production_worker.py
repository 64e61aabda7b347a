"""The production worker's Temporal wiring, for recording histories and for replaying them.

worker.py connects with the data converter of ``runtime.temporal_client`` (the payload codec
of ``runtime.payload_codec.process_codec``: encryption when PAYLOAD_ENCRYPTION_KEYS is set,
then the claim check), adds the client plugins of its telemetry (the
OpenTelemetry ``RunTracingPlugin``, when tracing is on: its interceptors, and opentelemetry
passed through the sandbox) and builds its Worker with ``runtime.worker_factory.build_worker``,
which adds the worker's own interceptors (the activity-only ``DatabaseOutages``).
``traced_client`` is that client; ``replayer_of`` turns a Worker built that way into the
Replayer with its workflows, runner, interceptors and plugins (the client's that are worker
ones too, then the worker's: the Replayer applies the plugins as the Worker does) and data
converter — read from the Worker itself, so that whatever the factory adds later is
replayed too.
"""

from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import worker as temporal_worker
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, Worker

from observability.setup import Telemetry, build
from runtime.payload_codec import process_codec
from runtime.settings import Settings
from runtime.temporal_client import data_converter, with_plugins
from tests.telemetry_support import process_spans

# Replayer options a Worker's config holds under the same name (interceptors and plugins
# are merged with the client's below).
WORKER_OPTIONS = (
    "workflows", "workflow_task_executor", "workflow_runner", "unsandboxed_workflow_runner",
    "workflow_failure_exception_types", "debug_mode", "disable_safe_workflow_eviction",
    "build_id", "identity",
)  # fmt: skip


def telemetry(traced: bool = True) -> Telemetry:
    """The worker's providers (observability.setup.build) — the process's one replay-safe
    tracer provider, spans kept in memory (tests.telemetry_support), since the plugin records
    into the global one; none at all (no tracer provider, so no plugin) when not ``traced``."""
    if not traced:
        return build({})
    return process_spans().telemetry


def production_converter(settings: Settings, sessions: sessionmaker[Session]) -> DataConverter:
    """The data converter runtime.stack connects with for these settings: encryption when
    PAYLOAD_ENCRYPTION_KEYS is set, then the claim check in the database of ``sessions``."""
    return data_converter(process_codec(settings, sessions))


def traced_client(client: Client, telemetry: Telemetry) -> Client:
    """``client`` with the telemetry's plugins, as worker.py builds its client."""
    return with_plugins(client, telemetry.plugins())


def replayer_of(worker: Worker) -> Replayer:
    """A Replayer that runs workflows exactly as ``worker`` would."""
    config: dict[str, Any] = dict(worker.config())
    client = config["client"]
    client_config: dict[str, Any] = dict(client.config())
    options = {name: config[name] for name in WORKER_OPTIONS if config.get(name) is not None}
    interceptors = [
        *(i for i in client_config["interceptors"] if isinstance(i, temporal_worker.Interceptor)),
        *config.get("interceptors", []),
    ]
    plugins = [
        *(p for p in client_config.get("plugins", []) if isinstance(p, temporal_worker.Plugin)),
        *config.get("plugins", []),
    ]
    if "header_codec_behavior" in client_config:
        options["header_codec_behavior"] = client_config["header_codec_behavior"]
    return Replayer(
        **options,
        namespace=client.namespace,
        data_converter=client_config["data_converter"],
        interceptors=interceptors,
        plugins=plugins,
    )
