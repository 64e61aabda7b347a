"""The production worker's Temporal wiring, for recording histories and for replaying them.

worker.py connects with the data converter of ``runtime.temporal_client`` (the payload codec
of PAYLOAD_ENCRYPTION_KEYS, when set), adds the client interceptors of its telemetry (the
OpenTelemetry ``RunTracingInterceptor``, when tracing is on) and builds its Worker with
``runtime.worker_factory.build_worker``, which adds the worker's own interceptors (the
activity-only ``DatabaseOutages``). ``traced_client`` is that client; ``replayer_of`` turns
a Worker built that way into the Replayer with its workflows, runner, interceptors (the
client's that are worker interceptors too, then the worker's: the order the Worker runs
them in) and data converter — read from the Worker itself, so that whatever the factory
adds later is replayed too.
"""

from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import worker as temporal_worker
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, Worker

from observability.setup import Telemetry, build
from runtime.payload_codec import payload_codec
from runtime.settings import Settings
from runtime.temporal_client import data_converter, with_interceptors

# Replayer options a Worker's config holds under the same name (interceptors and plugins
# are merged with the client's below).
WORKER_OPTIONS = (
    "workflows", "workflow_task_executor", "workflow_runner", "unsandboxed_workflow_runner",
    "workflow_failure_exception_types", "debug_mode", "disable_safe_workflow_eviction",
    "build_id", "identity",
)  # fmt: skip


def telemetry(traced: bool = True) -> Telemetry:
    """The worker's providers (observability.setup.build), spans kept in memory; none at all
    (no tracer provider, so no tracing interceptor) when not ``traced``."""
    if not traced:
        return build({})
    return build({}, span_processors=[SimpleSpanProcessor(InMemorySpanExporter())])


def production_converter(settings: Settings) -> DataConverter:
    """The data converter runtime.stack connects with for these settings."""
    return data_converter(payload_codec(settings.payload_encryption_keys))


def traced_client(client: Client, telemetry: Telemetry) -> Client:
    """``client`` with the telemetry's interceptors, as worker.py builds its client."""
    return with_interceptors(client, telemetry.interceptors())


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
