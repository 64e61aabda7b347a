"""GenAI telemetry of the model calls, by the OpenTelemetry GenAI semantic conventions.

One ``chat {model}`` span (kind CLIENT) per call, with ``gen_ai.operation.name`` ``chat``,
``gen_ai.provider.name`` ``openai`` (the API the client speaks, whatever serves it),
``gen_ai.request.model`` (and ``.max_tokens``, ``.temperature``), ``gen_ai.response.model``,
``.id`` and ``.finish_reasons``, ``gen_ai.usage.input_tokens`` / ``.output_tokens``,
``server.address`` / ``server.port``, and on failure ``error.type`` with the span's status
ERROR. Two histograms of the global meter provider: ``gen_ai.client.token.usage`` ({token};
``gen_ai.token.type`` input / output) and ``gen_ai.client.operation.duration`` (s), each
with the operation, provider, models and server (and ``error.type``) as attributes, the
buckets the conventions give.

The llm skill records from inside its activity, which Temporal never replays: once per
attempt. Neither prompts nor replies are recorded (they may hold a tenant's secrets).
"""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, MeterProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

INSTRUMENTATION = "governed_runs.genai"
CHAT = "chat"
PROVIDER = "openai"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip


@dataclass(frozen=True)
class GenAiInstruments:
    token_usage: Histogram
    operation_duration: Histogram


@lru_cache(maxsize=4)
def _instruments_for(provider: MeterProvider) -> GenAiInstruments:
    meter = provider.get_meter(INSTRUMENTATION)
    return GenAiInstruments(
        token_usage=meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        ),
        operation_duration=meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
    )


def instruments() -> GenAiInstruments:
    return _instruments_for(metrics.get_meter_provider())


def error_type(exc: BaseException) -> str:
    """The exception's class, fully qualified without private modules (httpx.ConnectError)."""
    cls = type(exc)
    public = [part for part in cls.__module__.split(".") if not part.startswith("_")]
    return ".".join([*public, cls.__qualname__]) if public != ["builtins"] else cls.__qualname__


@dataclass
class ChatCall:
    """One model call under way: what it learns is set on its span and its metrics."""

    span: Span
    attributes: dict[str, Any]  # of the metrics
    error: str | None = None
    usage: tuple[int, int] | None = None  # (input, output) tokens, once responded

    def responded(
        self,
        *,
        model: str,
        response_id: str | None,
        finish_reason: str | None,
        input_tokens: int,
        output_tokens: int,
    ) -> None:
        self.attributes["gen_ai.response.model"] = model
        self.span.set_attribute("gen_ai.response.model", model)
        if response_id:
            self.span.set_attribute("gen_ai.response.id", response_id)
        if finish_reason:
            self.span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        self.span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        self.span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        self.usage = (input_tokens, output_tokens)

    def failed(self, kind: str) -> None:
        """The call ended in an error of this ``error.type`` (a status code, ``timeout``,
        an exception's class)."""
        self.error = kind


@contextlib.contextmanager
def chat_call(
    model: str,
    server_address: str,
    server_port: int,
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Iterator[ChatCall]:
    """The span and metrics of one chat call around the block; an exception that leaves it
    without ``failed`` is recorded with its class as ``error.type``."""
    common = {
        "gen_ai.operation.name": CHAT,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.model": model,
        "server.address": server_address,
        "server.port": server_port,
    }
    attributes: dict[str, Any] = dict(common)
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    if temperature is not None:
        attributes["gen_ai.request.temperature"] = temperature
    tracer = trace.get_tracer(INSTRUMENTATION)
    started = time.monotonic()
    with tracer.start_as_current_span(
        f"{CHAT} {model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        call = ChatCall(span, dict(common))
        try:
            yield call
        except BaseException as exc:
            if call.error is None:
                call.failed(error_type(exc))
            raise
        finally:
            _finish(call, time.monotonic() - started)


def _finish(call: ChatCall, seconds: float) -> None:
    found = instruments()
    if call.error is not None:
        call.span.set_attribute("error.type", call.error)
        call.span.set_status(Status(StatusCode.ERROR, call.error))
        call.attributes["error.type"] = call.error
    found.operation_duration.record(seconds, call.attributes)
    if call.usage is not None:
        for kind, count in zip(("input", "output"), call.usage, strict=True):
            found.token_usage.record(count, {**call.attributes, "gen_ai.token.type": kind})


EXECUTE_TOOL = "execute_tool"


@contextlib.contextmanager
def tool_call(name: str, call_id: str | None) -> Iterator[Span]:
    """The ``execute_tool {name}`` span (kind INTERNAL) of one tool call an agent's model
    asked for, around the tool's run: ``gen_ai.operation.name`` ``execute_tool``,
    ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type`` ``function``; an
    exception, or ``failed``, sets ``error.type`` and the span's status."""
    attributes = {"gen_ai.operation.name": EXECUTE_TOOL, "gen_ai.tool.name": name,
                  "gen_ai.tool.type": "function"}  # fmt: skip
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    tracer = trace.get_tracer(INSTRUMENTATION)
    with tracer.start_as_current_span(
        f"{EXECUTE_TOOL} {name}", kind=SpanKind.INTERNAL, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        try:
            yield span
        except BaseException as exc:
            tool_failed(span, error_type(exc))
            raise


def tool_failed(span: Span, kind: str) -> None:
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))
