"""Run-aware Temporal tracing on the SDK's OpenTelemetry plugin (temporalio.contrib.opentelemetry).

``RunTracingPlugin`` is the SDK's ``OpenTelemetryPlugin`` with ``add_temporal_spans``: the
client's ``StartWorkflow`` / ``SignalWorkflow`` / ... spans, and in the worker the
``RunWorkflow:<type>`` span, the handlers' spans and each activity's ``StartActivity`` (in
the workflow) and ``RunActivity`` (in the activity) spans. The workflow span lasts as long
as the workflow does and is created once: a replay (a worker restart, a cache eviction)
creates it again with the same ids (``TemporalIdGenerator``: ids from ``workflow.new_random()``,
which leaves ``workflow.random()`` alone) and never ends it, so it is exported once, when
the workflow ends. It needs the process's global tracer provider to be the replay-safe one
of ``create_tracer_provider`` (``observability.setup`` builds and installs it).

Around the plugin's interceptor, two of ours make one span tree per run however it was
started (``temporal workflow start``, a plain client, the traced API):

- ``RunContextInterceptor`` (before it). The client puts the run id and tenant in the W3C
  baggage of a call to a run. In the workflow, the run's baggage (run id from the workflow
  id, tenant from the run input) is added to the trace context the start carries, so the
  workflow span, every activity's and the GenAI spans inside them (observability.genai)
  carry ``run_id`` and ``tenant_id`` (``RunAttributesSpanProcessor``). A signal or update
  whose sender sent no trace context (a plain client, the CLI) is traced under the run's
  workflow span instead of in a trace of its own; a query without one is not traced (an
  unsampled parent), as the SDK's former ``TracingInterceptor`` did.
- ``WorkflowSpanInterceptor`` (after it): keeps the workflow span's context for the above;
  and marks the span of a workflow or handler whose coroutine is closed unfinished (a worker
  shut down while it held the run: the SDK drops the cached run, the garbage collector
  closes it later, outside the workflow, where the plugin's span cannot tell it is not the
  run's end), so that ``ExportedSpans``, around each exporter, drops it instead of
  exporting a truncated copy of the span the run exports when it ends.

Both only rewrite the ``_tracer-data`` header of an inbound call in memory: no command
changes, so histories recorded with the former interceptor (the same header) or without
tracing replay unchanged.
"""

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Interceptor as ClientInterceptor,
)
from temporalio.client import (
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from temporalio.worker import (
    Interceptor as WorkerInterceptor,
)

from domain.ids import run_id_from_workflow_id
from domain.search_attributes import TENANT_ID as TENANT_ATTRIBUTE

RUN_ID = "run_id"
TENANT_ID = "tenant_id"
RUN_WORKFLOW_PREFIX = "run-"
# The header the SDK's OpenTelemetry interceptors (the plugin's and the former
# TracingInterceptor) carry the W3C trace context and baggage in.
HEADER = "_tracer-data"
_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
_CONVERTER = PayloadConverter.default
# Set on a workflow's span ended by the garbage collector; ExportedSpans drops it.
ABANDONED = "governed_runs.abandoned"
# Where WorkflowSpanInterceptor leaves the workflow span's context: on the workflow object,
# as the SDK's TemporalIdGenerator keeps its random there.
_WORKFLOW_SPAN = "__governed_runs_workflow_span"


def _tenant_of(args: Any) -> str | None:
    first = args[0] if args else None
    tenant = (
        first.get("tenant_id") if isinstance(first, dict) else getattr(first, "tenant_id", None)
    )
    return tenant if isinstance(tenant, str) else None


def run_entries(workflow_id: str, tenant_id: str | None = None) -> dict[str, str]:
    """The baggage of a run's calls: its run id (and tenant); none for another workflow."""
    if not workflow_id.startswith(RUN_WORKFLOW_PREFIX):
        return {}
    entries = {RUN_ID: run_id_from_workflow_id(workflow_id)}
    if tenant_id:
        entries[TENANT_ID] = tenant_id
    return entries


def _with_baggage(ctx: Context, entries: Mapping[str, str]) -> Context:
    for key, value in entries.items():
        if baggage.get_baggage(key, ctx) is None:
            ctx = baggage.set_baggage(key, value, context=ctx)
    return ctx


@contextlib.contextmanager
def run_baggage(workflow_id: str, tenant_id: str | None = None) -> Iterator[None]:
    """Make run id (and tenant) current baggage while a client call to a run is made."""
    entries = run_entries(workflow_id, tenant_id)
    if not entries:
        yield
        return
    token = context.attach(_with_baggage(context.get_current(), entries))
    try:
        yield
    finally:
        context.detach(token)


class _RunBaggageOutbound(OutboundInterceptor):
    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        with run_baggage(input.id, _tenant_of(input.args)):
            return await super().start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        with run_baggage(input.id):
            return await super().signal_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        with run_baggage(input.id):
            return await super().query_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        with run_baggage(input.id):
            return await super().start_workflow_update(input)


# ----- the workflow side -------------------------------------------------------------


def _context_of(headers: Mapping[str, Payload]) -> Context:
    payload = headers.get(HEADER)
    if not payload:
        return Context()
    try:
        carrier = _CONVERTER.from_payloads([payload])[0]
    except Exception:  # noqa: BLE001 - not ours to fail a workflow task over
        return Context()
    return _PROPAGATOR.extract(carrier) if isinstance(carrier, dict) else Context()


def _with_context(headers: Mapping[str, Payload], ctx: Context) -> dict[str, Payload]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return {**headers, HEADER: _CONVERTER.to_payloads([carrier])[0]}


def _has_span(ctx: Context) -> bool:
    return trace.get_current_span(ctx).get_span_context().is_valid


def _unrecorded_parent(run_id: str) -> SpanContext:
    """A parent no span has: ids from a hash of the workflow's run id (valid, never 0)."""
    digest = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:24], "big")
    return SpanContext(digest >> 64 or 1, digest & (2**64 - 1) or 1, is_remote=True)


def _under(parent: SpanContext, ctx: Context, *, sampled: bool) -> Context:
    flags = parent.trace_flags if sampled else TraceFlags(TraceFlags.DEFAULT)
    remote = SpanContext(parent.trace_id, parent.span_id, is_remote=True, trace_flags=flags,
                         trace_state=parent.trace_state)  # fmt: skip
    return trace.set_span_in_context(NonRecordingSpan(remote), ctx)


class _RunContextInbound(WorkflowInboundInterceptor):
    """Before the plugin's interceptor: the run's baggage on every inbound call, and a
    parent for the handlers of calls sent without a trace context."""

    _entries: dict[str, str] | None = None

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self._entries = run_entries(workflow.info().workflow_id, _tenant_of(input.args))
        if self._entries:
            ctx = _with_baggage(_context_of(input.headers), self._entries)
            input.headers = _with_context(input.headers, ctx)
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        input.headers = self._handler_headers(input.headers, traced=True)
        return await super().handle_signal(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        input.headers = self._handler_headers(input.headers, traced=True)
        return super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        input.headers = self._handler_headers(input.headers, traced=True)
        return await super().handle_update_handler(input)

    async def handle_query(self, input: HandleQueryInput) -> Any:
        input.headers = self._handler_headers(input.headers, traced=False)
        return await super().handle_query(input)

    def _handler_headers(
        self, headers: Mapping[str, Payload], *, traced: bool
    ) -> Mapping[str, Payload]:
        """The call's own trace context when it sent one; else the workflow span's (its
        start's before the workflow span exists; a parent made of the run id before
        either), sampled for a signal or update, unsampled for a query."""
        ctx = _context_of(headers)
        entries = self._entries
        if entries is None:  # a signal or update delivered with the start, before the run
            info = workflow.info()
            entries = run_entries(info.workflow_id,
                                  info.typed_search_attributes.get(TENANT_ATTRIBUTE))  # fmt: skip
        if not _has_span(ctx):
            parent = self._workflow_parent()
            if parent is not None:
                ctx = _under(parent, ctx, sampled=traced)
            else:  # nothing to attach it to yet: not traced (the run starts the trace)
                ctx = _under(_unrecorded_parent(workflow.info().run_id), ctx, sampled=False)
        elif not entries:
            return headers
        return _with_context(headers, _with_baggage(ctx, entries))

    @staticmethod
    def _workflow_parent() -> SpanContext | None:
        span = getattr(workflow.instance(), _WORKFLOW_SPAN, None)
        if isinstance(span, SpanContext):
            return span
        started = trace.get_current_span(_context_of(workflow.info().headers))
        found = started.get_span_context()
        return found if found.is_valid else None


class _WorkflowSpanInbound(WorkflowInboundInterceptor):
    """After the plugin's interceptor: keeps the workflow span's context (the same ids on
    every replay) for ``_RunContextInbound``; and marks the plugin's span of a workflow or
    handler abandoned when its coroutine is closed unfinished (see ``ExportedSpans``)."""

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        span = trace.get_current_span()
        found = span.get_span_context()
        if found.is_valid:
            setattr(workflow.instance(), _WORKFLOW_SPAN, found)
        with _abandoned_on_close(span):
            return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        with _abandoned_on_close(trace.get_current_span()):
            return await super().handle_signal(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        with _abandoned_on_close(trace.get_current_span()):
            return await super().handle_update_handler(input)


@contextlib.contextmanager
def _abandoned_on_close(span: trace.Span) -> Iterator[None]:
    """GeneratorExit reaches a workflow coroutine only when it is closed unfinished: a
    workflow dropped from a worker's cache without its eviction running it to an end (a
    worker shut down while the run waits), closed whenever the garbage collector gets to
    it, outside the workflow. The plugin's span would then end there and be exported, half
    its length, before the run's real span (same ids) at its end."""
    try:
        yield
    except GeneratorExit:
        span.set_attribute(ABANDONED, True)
        raise


class RunContextInterceptor(ClientInterceptor, WorkerInterceptor):
    """The run's baggage on client calls and in the workflow (see the module doc)."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RunBaggageOutbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _RunContextInbound


class WorkflowSpanInterceptor(WorkerInterceptor):
    """Keeps the workflow span's context (see the module doc)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _WorkflowSpanInbound


class RunTracingPlugin(OpenTelemetryPlugin):
    """The SDK's OpenTelemetryPlugin with its Temporal spans, between our two interceptors
    (the order the client, the worker and the Replayer all keep: a plugin's interceptors
    are appended in its order)."""

    def __init__(self) -> None:
        super().__init__(add_temporal_spans=True)
        self.interceptors = [RunContextInterceptor(), *(self.interceptors or []),
                             WorkflowSpanInterceptor()]  # fmt: skip


class RunAttributesSpanProcessor(SpanProcessor):
    """Sets ``run_id`` and ``tenant_id`` on each span from the baggage or the workflow id."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        entries = baggage.get_all(parent_context)
        attributes = span.attributes or {}
        run_id = entries.get(RUN_ID)
        workflow_id = attributes.get("temporalWorkflowID")
        if (
            run_id is None
            and isinstance(workflow_id, str)
            and workflow_id.startswith(RUN_WORKFLOW_PREFIX)
        ):
            run_id = run_id_from_workflow_id(workflow_id)
        if run_id is not None and RUN_ID not in attributes:
            span.set_attribute(RUN_ID, str(run_id))
        tenant = entries.get(TENANT_ID)
        if tenant is not None and TENANT_ID not in attributes:
            span.set_attribute(TENANT_ID, str(tenant))

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class ExportedSpans(SpanProcessor):
    """``processor`` (an exporter's) without the spans of abandoned workflow coroutines
    (``ABANDONED``): a run's workflow span is exported once, when the run ends, never also
    when a worker that held it shuts down. (The plugin already skips ends during replay and
    eviction.)"""

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor = processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.attributes or {}).get(ABANDONED):
            self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.processor.force_flush(timeout_millis)


class _AbandonedDetaches(logging.Filter):
    """Drops OpenTelemetry's "Failed to detach context" of a coroutine closed unfinished
    (the ValueError of a context token of the dead task's, raised while GeneratorExit
    unwinds it): a worker that shuts down holding runs would log one traceback per run."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, ValueError) and isinstance(exc.__context__, GeneratorExit))


def quiet_abandoned_detaches() -> None:
    """Install ``_AbandonedDetaches`` on the ``opentelemetry.context`` logger (once)."""
    logger = logging.getLogger("opentelemetry.context")
    if not any(isinstance(f, _AbandonedDetaches) for f in logger.filters):
        logger.addFilter(_AbandonedDetaches())
