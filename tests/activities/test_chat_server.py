"""The local chat-completions server (runtime.chat_completions) over real HTTP: scripts chosen
by model or header, the turn by the conversation so far, the default echo, counted usage,
failures on demand, refused requests, what it records — and the embedded stack's default."""

import logging

import httpx
import pytest

from runtime.chat_completions import ChatCompletionsServer, chat_server, embedded_chat_server
from runtime.chat_scripts import ToolCall, Turn
from runtime.settings import Settings

pytestmark = pytest.mark.timeout(60)


def post(server: ChatCompletionsServer, body: dict, path: str = "/v1/chat/completions",
         **headers: str) -> httpx.Response:  # fmt: skip
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)


def chat(model: str, *messages: dict, **extra) -> dict:
    return {"model": model, "messages": list(messages), **extra}


USER = {"role": "user", "content": "find the invoice of acme"}


@pytest.fixture
def server():
    with chat_server() as s:
        yield s


def test_the_default_echoes_the_last_user_message_with_counted_usage(server):
    answer = post(server, chat("any-model", {"role": "system", "content": "be brief"}, USER))
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "chat.completion" and body["model"] == "any-model"
    [choice] = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": "echo: find the invoice of acme"}
    assert choice["finish_reason"] == "stop"
    # a token per 4 characters, rounded up, plus 3 a message: (2 + 3) + (6 + 3); the reply 8
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 8, "total_tokens": 22}
    again = post(server, chat("any-model", {"role": "system", "content": "be brief"}, USER))
    assert again.json()["id"] == body["id"]  # the same request, the same id
    assert post(server, chat("any-model", USER), path="/chat/completions").status_code == 200


def test_a_reply_longer_than_max_tokens_is_cut(server):
    body = post(server, chat("m", {"role": "user", "content": "x" * 100}, max_tokens=3)).json()
    assert body["choices"][0]["message"]["content"] == "echo: xxxxxx"  # 3 tokens of 4 chars
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_a_script_answers_turn_by_turn_from_the_conversation(server):
    server.script("agent", [
        Turn.calls(ToolCall("lookup", {"customer": "acme"}), ToolCall("fetch", "{not json")),
        Turn.reply("the invoice is 42", model="agent-2025"),
    ])  # fmt: skip
    first = post(server, chat("agent", USER)).json()
    [choice] = first["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]) for c in calls] == [
        ("function", {"name": "lookup", "arguments": '{"customer": "acme"}'}),
        ("function", {"name": "fetch", "arguments": "{not json"}),
    ]
    assert len({c["id"] for c in calls}) == 2
    assert post(server, chat("agent", USER)).json()["choices"][0]["message"]["tool_calls"] == calls
    results = [{"role": "tool", "tool_call_id": c["id"], "content": "42"} for c in calls]
    conversation = [USER, {"role": "assistant", "content": None, "tool_calls": calls}, *results]
    second = post(server, chat("agent", *conversation)).json()
    assert second["model"] == "agent-2025"
    assert second["choices"][0]["message"]["content"] == "the invoice is 42"
    past_the_end = [*conversation, {"role": "assistant", "content": "x"}, USER]
    last = post(server, chat("agent", *past_the_end)).json()
    assert last["choices"][0]["message"]["content"] == "the invoice is 42"


def test_the_header_chooses_the_script_whatever_the_model(server):
    server.script("short", [Turn.reply("by header", usage=(7, 2))])
    body = post(server, chat("gpt-4o-mini", USER), **{"X-Chat-Script": "short"}).json()
    assert body["choices"][0]["message"]["content"] == "by header"
    assert body["model"] == "gpt-4o-mini" and body["usage"]["prompt_tokens"] == 7
    unknown = post(server, chat("m", USER), **{"X-Chat-Script": "nope"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == (
        "X-Chat-Script: no script named 'nope' (scripts: short)"
    )


def test_failures_on_demand_then_the_scripted_reply(server):
    server.script("slow", [Turn.reply("late").after(0.5)])
    server.fail_next(Turn.failure(503), Turn.failure(429, "slow down"), Turn.failure(400, "bad"))
    server.fail_next(Turn.malformed("<html>oops</html>"), Turn.redirect("/v1/chat/completions"))
    answers = [post(server, chat("slow", USER)) for _ in range(5)]
    assert [a.status_code for a in answers] == [503, 429, 400, 200, 307]
    assert answers[0].json()["error"]["type"] == "server_error"
    assert answers[1].json()["error"] == {"message": "slow down", "type": "requests",
                                          "param": None, "code": "rate_limit_exceeded"}  # fmt: skip
    assert answers[2].json()["error"]["message"] == "bad"
    assert answers[3].text == "<html>oops</html>"
    assert answers[4].headers["location"] == "/v1/chat/completions"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=chat("slow", USER), timeout=0.2)
    assert post(server, chat("slow", USER)).json()["choices"][0]["message"]["content"] == "late"
    assert len(server.requests) == 7  # the failed ones recorded too
    with pytest.raises(ValueError, match="400 or more"):
        Turn.failure(302)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [USER]}, "model: a model name is required"),
        ({"model": "m", "messages": []}, "messages: a non-empty list of messages is required"),
        ({"model": "m", "messages": [{"role": "robot"}]}, "messages[0].role: one of system"),
        ({"model": "m", "messages": [USER], "stream": True}, "stream: streaming is not supported"),
        ({"model": "m", "messages": [USER], "tools": [{"type": "retrieval"}]},
         "tools[0].type: 'function' is required"),
        ({"model": "m", "messages": [USER], "tools": [{"type": "function",
                                                       "function": {"name": "a b"}}]},
         "tools[0].function.name: a name of 1 to 64"),
        ({"model": "m", "messages": [USER], "tools": [{"type": "function", "function": {
            "name": "f", "parameters": {"type": "array"}}}]},
         "tools[0].function.parameters: a JSON schema object is required"),
    ],
)  # fmt: skip
def test_a_request_the_api_would_refuse_is_400_naming_the_field(server, body, message):
    answer = post(server, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"].startswith(message)
    assert server.requests[-1].body == body  # recorded as sent


def test_unknown_paths_models_and_the_api_key():
    with chat_server(api_key="k-1", scripts={"agent": [Turn.reply("hi")]}) as server:
        assert post(server, chat("m", USER)).status_code == 401
        assert post(server, chat("m", USER), Authorization="Bearer k-1").status_code == 200
        missing = post(server, chat("m", USER), path="/v1/completions")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "Unknown request URL: POST /v1/completions"
        models = httpx.get(f"{server.url}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["echo", "agent"]
        seen = server.requests[1]
        assert seen.headers["authorization"] == "Bearer k-1" and seen.prompt == USER["content"]
        assert server.bodies() == [chat("m", USER), chat("m", USER)]


def test_the_embedded_stack_starts_it_on_the_default_url_unless_configured(monkeypatch, caplog,
                                                                           tmp_path):  # fmt: skip
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    configured = Settings(_env_file=None, data_dir=tmp_path, llm_base_url="http://127.0.0.1:9/v1")
    assert embedded_chat_server(configured) is None
    default = Settings(_env_file=None, data_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="runtime.chat_completions")
    first = embedded_chat_server(default)
    try:
        if first is not None:  # the default port was free: the llm skill's default answers
            assert first.base_url == default.llm_base_url == "http://127.0.0.1:8081/v1"
            answer = httpx.post(f"{default.llm_base_url}/chat/completions",
                                json=chat("gpt-4o-mini", USER), timeout=5)  # fmt: skip
            assert answer.json()["choices"][0]["message"]["content"].startswith("echo: ")
            assert embedded_chat_server(default) is None  # now the port is taken
        assert "the local chat server cannot listen on 127.0.0.1:8081" in caplog.text
    finally:
        if first is not None:
            first.close()
