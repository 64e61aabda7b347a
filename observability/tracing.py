"""Run-aware Temporal tracing on top of ``temporalio.contrib.opentelemetry``.

``RunTracingInterceptor`` is temporalio's ``TracingInterceptor`` (client spans, workflow
spans created only outside replay, activity spans) plus two things: the client puts the
run id and tenant in the W3C baggage that travels with the Temporal headers, and
``RunAttributesSpanProcessor`` copies them (and the run id of a ``run-<id>`` workflow)
onto every span, so one run is one span tree whose spans all carry ``run_id``. The llm
skill's ``chat {model}`` spans (observability.genai) are children of their activity's.
"""

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from temporalio.client import (
    OutboundInterceptor,
    QueryWorkflowInput,
    SignalWorkflowInput,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.contrib.opentelemetry import TracingInterceptor

from domain.ids import run_id_from_workflow_id

RUN_ID = "run_id"
TENANT_ID = "tenant_id"
RUN_WORKFLOW_PREFIX = "run-"


def _tenant_of(args: Any) -> str | None:
    first = args[0] if args else None
    tenant = (
        first.get("tenant_id") if isinstance(first, dict) else getattr(first, "tenant_id", None)
    )
    return tenant if isinstance(tenant, str) else None


@contextlib.contextmanager
def run_baggage(workflow_id: str, tenant_id: str | None = None) -> Iterator[None]:
    """Make run id (and tenant) current baggage while a client call to a run is made."""
    if not workflow_id.startswith(RUN_WORKFLOW_PREFIX):
        yield
        return
    ctx = baggage.set_baggage(RUN_ID, run_id_from_workflow_id(workflow_id))
    if tenant_id:
        ctx = baggage.set_baggage(TENANT_ID, tenant_id, context=ctx)
    token = context.attach(ctx)
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


class RunTracingInterceptor(TracingInterceptor):
    """TracingInterceptor whose client calls to a run carry run id and tenant as baggage."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RunBaggageOutbound(super().intercept_client(next))


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
