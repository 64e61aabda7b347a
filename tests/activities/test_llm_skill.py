"""The llm skill through the openai client against the real local chat server: usage and
cost, tools offered and tool calls returned, every failure mapped (retryable or not, the
client's own retries off), and the egress guarantees kept on the client's path."""

import pytest

from activities.skills import llm as llm_module
from activities.skills.egress import EgressRefused
from activities.skills.errors import SkillError
from activities.skills.llm import llm, reservation
from domain.skill_catalog import LlmInput
from runtime.chat_completions import chat_server
from runtime.chat_scripts import ToolCall, Turn
from tests.llm_support import PRICE_IN, PRICE_OUT, context

pytestmark = pytest.mark.timeout(60)

LOOKUP = {"type": "function", "function": {
    "name": "lookup", "description": "Find a customer's invoice",
    "parameters": {"type": "object", "properties": {"customer": {"type": "string"}}}}}  # fmt: skip


def ask(**fields) -> LlmInput:
    return LlmInput.model_validate({"prompt": "find the invoice of acme", **fields})


@pytest.fixture
def server():
    with chat_server() as s:
        yield s


def test_a_reply_with_its_usage_and_cost(server):
    out = llm(ask(model="tiny", temperature=0.2), context(server.base_url))
    assert out.output == {
        "text": "echo: find the invoice of acme",
        "model": "tiny",
        "usage": {"prompt_tokens": 9, "completion_tokens": 8},  # counted by the server
    }
    assert out.cost == (9 * PRICE_IN + 8 * PRICE_OUT) / 1000
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    prompt = [{"role": "user", "content": "find the invoice of acme"}]
    assert sent.body == {
        "model": "tiny",
        "temperature": 0.2,
        "max_tokens": 1024,
        "messages": prompt,
    }
    assert "authorization" not in sent.headers  # no LLM_API_KEY: no key is sent
    default = llm(ask(), context(server.base_url))
    assert default.output["model"] == "gpt-4o-mini"  # LLM_MODEL when the step names none


def test_only_the_configured_key_and_no_environment_header_reaches_the_endpoint(
    server, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Leak: yes\nAuthorization: Bearer env")
    llm(ask(), context(server.base_url, api_key="sk-configured"))
    llm(ask(), context(server.base_url))
    keyed, keyless = server.requests
    assert keyed.headers["authorization"] == "Bearer sk-configured"
    assert "authorization" not in keyless.headers
    for seen in (keyed, keyless):
        assert not {"openai-organization", "openai-project", "x-leak"} & set(seen.headers)
        assert not [h for h in seen.headers if h.startswith("x-stainless")]
        assert seen.headers["user-agent"].startswith("OpenAI/Python")


def test_tools_are_offered_and_the_tool_calls_returned(server):
    server.script("agent", [Turn.calls(ToolCall("lookup", {"customer": "acme"}),
                                       ToolCall("lookup", "{not json"))])  # fmt: skip
    data = ask(model="agent", tools=[LOOKUP], max_tokens=50)
    out = llm(data, context(server.base_url))
    calls = out.output["tool_calls"]
    assert [c["function"] for c in calls] == [
        {"name": "lookup", "arguments": '{"customer": "acme"}'},
        {"name": "lookup", "arguments": "{not json"},  # as the model wrote it
    ]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert out.output["text"] == "" and out.output["model"] == "agent"
    assert server.bodies()[0]["tools"] == [LOOKUP]
    usage = out.output["usage"]
    assert (
        out.cost
        == (usage["prompt_tokens"] * PRICE_IN + usage["completion_tokens"] * PRICE_OUT) / 1000
    )
    assert usage["prompt_tokens"] > 9  # the tools are prompt too
    assert reservation(data, context(server.base_url)) >= out.cost  # never reserved too little


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_overload_and_server_errors_are_retryable_and_sent_once(server, status):
    server.fail_next(Turn.failure(status))
    with pytest.raises(SkillError) as failed:
        llm(ask(), context(server.base_url))
    assert failed.value.retryable and str(failed.value) == f"llm endpoint answered {status}"
    assert len(server.requests) == 1  # the client's own retries are off: Temporal retries


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        (Turn.failure(400, "Invalid 'messages[0].content': string too long."),
         "llm endpoint answered 400: Invalid 'messages[0].content': string too long."),
        (Turn.failure(404, "The model 'nope' does not exist"),
         "llm endpoint answered 404: The model 'nope' does not exist"),
        (Turn(status=422, raw="not an error body"), "llm endpoint answered 422: not an error body"),
    ],
)  # fmt: skip
def test_other_client_errors_are_final_with_the_endpoints_message(server, turn, message):
    server.fail_next(turn)
    with pytest.raises(SkillError) as failed:
        llm(ask(), context(server.base_url))
    assert not failed.value.retryable and str(failed.value) == message
    assert len(server.requests) == 1


def test_a_wrong_key_is_final():
    with chat_server(api_key="sk-right") as server:
        with pytest.raises(SkillError) as failed:
            llm(ask(), context(server.base_url, api_key="sk-wrong"))
        assert not failed.value.retryable
        assert str(failed.value) == "llm endpoint answered 401: Incorrect API key provided"
        ok = llm(ask(), context(server.base_url, api_key="sk-right"))
        assert ok.output["text"].startswith("echo: ")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("<html>a proxy's login page</html>", "JSONDecodeError"),
        ('{"object": "chat.completion", "model": "m"}', "ValueError: no choices"),
        ('{"choices": [{"index": 0}]}', "ValueError: choice 0 has no message"),
        ('{"choices": [{"message": {"role": "assistant", "content": 5}}]}',
         "TypeError: message content is a int"),
        ('{"choices": [{"message": {"role": "assistant", "tool_calls": [{"id": "c1", '
         '"type": "function", "function": {"name": "f"}}]}}]}',
         "a tool call without a function name and arguments"),
    ],
)  # fmt: skip
def test_a_body_that_is_no_chat_completion_is_final(server, body, problem):
    server.fail_next(Turn.malformed(body))
    with pytest.raises(SkillError) as failed:
        llm(ask(), context(server.base_url))
    assert not failed.value.retryable
    assert str(failed.value).startswith("llm endpoint returned an unexpected body: ")
    assert problem in str(failed.value)


def test_a_slow_endpoint_times_out_retryably(server, monkeypatch):
    monkeypatch.setattr(llm_module, "TIMEOUT_SECONDS", 0.5)
    server.script("slow", [Turn.reply("late").after(3)])
    with pytest.raises(SkillError) as failed:
        llm(ask(model="slow"), context(server.base_url))
    assert failed.value.retryable
    assert str(failed.value) == f"llm endpoint {server.url}: no answer within 0.5 s"


def test_an_unreachable_endpoint_is_retryable():
    with chat_server() as gone:
        base_url, url = gone.base_url, gone.url
    with pytest.raises(SkillError) as failed:
        llm(ask(), context(base_url))
    assert failed.value.retryable
    assert str(failed.value).startswith(f"llm endpoint {url}: ConnectError: ")


# ----- the egress path, through the openai client ------------------------------------


def test_an_endpoint_on_a_protected_port_is_refused_before_any_request(server):
    with pytest.raises(EgressRefused) as refused:
        llm(ask(), context(server.base_url, protected=(server.port,)))
    assert (
        refused.value.reason
        == f"127.0.0.1:{server.port} is a protected endpoint of this deployment"
    )
    assert not refused.value.retryable and server.requests == []


def test_a_redirect_to_another_origin_is_refused_and_never_reached(server):
    with chat_server() as other:
        server.fail_next(Turn.redirect(f"{other.base_url}/chat/completions"))
        with pytest.raises(EgressRefused) as refused:
            llm(ask(), context(server.base_url))
        assert other.requests == []
    assert "127.0.0.1 is in a loopback range (no allow-list entry for tenant acme)" in (
        refused.value.reason)  # fmt: skip
    assert len(server.requests) == 1


def test_a_redirect_on_the_endpoint_is_followed_hop_by_hop_without_cookies(server):
    cookie = (("Set-Cookie", "session=tenant-a; Path=/"),)
    server.fail_next(Turn.redirect("/chat/completions", headers=cookie))
    out = llm(ask(), context(server.base_url, api_key="sk-1"))
    assert out.output["text"] == "echo: find the invoice of acme"
    llm(ask(), context(server.base_url, api_key="sk-1"))
    first, hop, second = server.requests
    assert (first.path, hop.path, second.path) == (
        "/v1/chat/completions", "/chat/completions", "/v1/chat/completions")  # fmt: skip
    assert hop.body == first.body and hop.headers["authorization"] == "Bearer sk-1"  # 307: kept
    assert [r for r in server.requests if "cookie" in r.headers] == []


def test_a_name_is_pinned_to_its_vetted_address_with_the_host_kept(server):
    named = f"http://localhost:{server.port}/v1"
    out = llm(ask(), context(named))
    assert out.output["text"].startswith("echo: ")
    assert server.requests[0].headers["host"] == f"localhost:{server.port}"
