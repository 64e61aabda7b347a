"""GenAI telemetry of the llm skill (observability.genai) against the real chat server: the
``chat {model}`` span and the gen_ai.client.* metrics by the semantic conventions, on a
reply and on every kind of failure. Spans and points are read from the process-wide
providers (tests.telemetry_support), each test's own by a model name of its own."""

import uuid

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from activities.skills import llm as llm_module
from activities.skills.errors import SkillError
from activities.skills.llm import llm
from domain.skill_catalog import LlmInput
from observability.genai import error_type
from runtime.chat_completions import chat_server
from runtime.chat_scripts import Turn
from tests.llm_support import context
from tests.telemetry_support import process_spans, process_telemetry

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def model() -> str:
    """A model name of the test's own; the process-wide providers installed before it."""
    process_spans(), process_telemetry()
    return f"m-{uuid.uuid4().hex[:8]}"


def chat_spans(model: str) -> list:
    return [s for s in process_spans().exporter.get_finished_spans() if s.name == f"chat {model}"]


def points(name: str, model: str) -> list:
    data = process_telemetry().reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else [])
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
        if point.attributes.get("gen_ai.request.model") == model
    ]


def test_a_reply_is_one_client_span_and_its_token_and_duration_points(model):
    with chat_server() as server:
        server.script(
            model, [Turn.reply("the invoice is 42", model=f"{model}-2025", usage=(31, 7))]
        )
        data = LlmInput(prompt="find it", model=model, max_tokens=64, temperature=0.5)
        llm(data, context(server.base_url))
    [span] = chat_spans(model)
    assert span.kind == SpanKind.CLIENT and span.status.status_code == StatusCode.UNSET
    attributes = dict(span.attributes)
    response_id = attributes.pop("gen_ai.response.id")
    assert response_id.startswith("chatcmpl-")
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.response.model": f"{model}-2025",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 31,
        "gen_ai.usage.output_tokens": 7,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": f"{model}-2025",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    tokens = {
        p.attributes["gen_ai.token.type"]: p for p in points("gen_ai.client.token.usage", model)
    }
    assert set(tokens) == {"input", "output"}
    assert (tokens["input"].count, tokens["input"].sum) == (1, 31)
    assert (tokens["output"].count, tokens["output"].sum) == (1, 7)
    assert dict(tokens["input"].attributes) == {**common, "gen_ai.token.type": "input"}
    [duration] = points("gen_ai.client.operation.duration", model)
    assert dict(duration.attributes) == common and duration.count == 1
    span_seconds = (span.end_time - span.start_time) / 1e9
    assert 0 < duration.sum <= span_seconds + 0.01
    assert duration.explicit_bounds[:3] == (0.01, 0.02, 0.04)  # the conventions' buckets
    assert tokens["input"].explicit_bounds[:3] == (1, 4, 16)


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (Turn.failure(503), "503"),
        (Turn.failure(429), "429"),
        (Turn.failure(400, "bad"), "400"),
        (Turn.malformed("<html></html>"), "malformed_response"),
        (Turn.malformed('{"choices": []}'), "malformed_response"),
        (Turn.reply("late").after(2), "timeout"),
    ],
)
def test_a_failed_call_has_its_error_type_on_the_span_and_the_duration(model, monkeypatch,
                                                                       turn, expected):  # fmt: skip
    monkeypatch.setattr(llm_module, "TIMEOUT_SECONDS", 0.5)
    with chat_server() as server:
        server.script(model, [turn])
        with pytest.raises(SkillError):
            llm(LlmInput(prompt="x", model=model), context(server.base_url))
    assert_failed(model, expected)


def test_unreachable_and_refused_endpoints_are_failed_calls_too(model):
    with chat_server() as gone:
        base_url = gone.base_url
    with pytest.raises(SkillError):
        llm(LlmInput(prompt="x", model=model), context(base_url))
    assert_failed(model, "httpx.ConnectError")
    other = f"{model}-refused"
    with chat_server() as server, pytest.raises(SkillError):
        llm(LlmInput(prompt="x", model=other), context(server.base_url, protected=(server.port,)))
    assert_failed(other, "activities.skills.egress.EgressRefused")


def assert_failed(model: str, expected: str) -> None:
    [span] = chat_spans(model)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == expected
    assert "gen_ai.usage.input_tokens" not in span.attributes
    [duration] = points("gen_ai.client.operation.duration", model)
    assert duration.attributes["error.type"] == expected and duration.count == 1
    assert points("gen_ai.client.token.usage", model) == []


def test_error_type_names_the_class_without_private_modules():
    import httpx

    assert error_type(httpx.ConnectError("x")) == "httpx.ConnectError"
    assert error_type(ValueError("x")) == "ValueError"
