"""What an agent step decides, pure (domain.agent): its input refused naming the field, the
tools it offers from the catalog's schemas, the model's tool calls planned or refused, what
goes back to the model, and the messages the llm skill takes (old inputs still valid)."""

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from domain import agent
from domain.models import RunInput
from domain.secret_refs import referenced_names
from domain.skill_catalog import LlmInput
from domain.skill_discovery import installed_catalog
from domain.validation_errors import describe_first

GOOD = {"prompt": "triage the ticket", "tools": ["echo", "template"]}


def problem(raw: dict) -> str | None:
    try:
        return agent.input_problem(raw, installed_catalog().names)
    except ValidationError as exc:
        return describe_first(exc)


def test_a_good_input_has_no_problem_and_takes_defaults():
    assert problem(GOOD) is None
    inp = agent.AgentInput.model_validate(GOOD)
    assert (inp.max_turns, inp.budget, inp.model) == (8, None, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tools": []}, "tools: List should have at least 1 item"),
        ({"max_turns": 0}, "max_turns: Input should be greater than or equal to 1"),
        ({"max_turns": -3}, "max_turns: Input should be greater than or equal to 1"),
        ({"max_turns": 51}, "max_turns: Input should be less than or equal to 50"),
        ({"tools": ["echo", "agent"]}, "an agent cannot call 'agent'"),
        ({"tools": ["echo", "echo"]}, "each tool once: echo named more than once"),
        ({"tools": ["Not A Name"]}, "'Not A Name' is not a skill name"),
        ({"tools": ["echo", "no_such_tool"]},
         "tools: unknown skill 'no_such_tool' (known skills: echo, http, llm"),
        ({"prompt": ""}, "prompt: String should have at least 1 character"),
        ({"budget": "-1"}, "budget: Input should be greater than or equal to 0"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"tools": [{"$ref": "steps.a.output.tools"}]},
         "input.tools.0: an agent's input may reference earlier outputs only in system and "
         "prompt"),
    ],
)  # fmt: skip
def test_a_bad_input_is_refused_naming_the_field(change, expected):
    found = problem({**GOOD, **change})
    assert found is not None and expected in found, found


def test_prompts_may_reference_earlier_outputs_rendered_as_text_when_resolved():
    raw = {**GOOD, "prompt": {"$ref": "steps.fetch.output.body"}}
    assert problem(raw) is None
    resolved = agent.resolved_input({**raw, "prompt": {"b": 1, "a": [2]}})
    assert resolved.prompt == '{"a": [2], "b": 1}'


def test_an_agents_budget_is_at_most_the_runs():
    steps = [{"skill": "agent", "input": {**GOOD, "budget": "2"}}]
    with pytest.raises(ValidationError) as refused:
        RunInput.model_validate({"tenant_id": "t", "steps": steps, "budget": "1"})
    assert "steps.0.input.budget: 2 exceeds the run's budget 1" in str(refused.value)
    assert RunInput.model_validate({"tenant_id": "t", "steps": steps, "budget": "2"})


def test_the_tools_offered_are_the_catalogs_skills_with_their_input_schemas():
    catalog = installed_catalog()
    [echo, template] = agent.tool_definitions(catalog, [("agent", GOOD), ("echo", {})])
    assert echo.function.name == "echo"
    assert echo.function.parameters["properties"] == {"text": {"type": "string"}}
    assert echo.function.parameters["required"] == ["text"]
    assert "title" not in json.dumps(echo.function.parameters)
    assert template.function.description == catalog.entries["template"].skill.description
    # What the llm skill takes as its tools.
    LlmInput.model_validate({"prompt": "x", "tools": [echo.model_dump(exclude_none=True)]})


def call(name: str, arguments: str, call_id: str = "c1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_a_call_of_an_agents_tool_with_an_object_runs_that_skill():
    [planned] = agent.plan_calls([call("echo", '{"text": "hi"}')], ["echo"])
    assert (planned.skill, planned.arguments, planned.refusal) == ("echo", {"text": "hi"}, None)
    [empty] = agent.plan_calls([call("echo", "")], ["echo"])
    assert empty.arguments == {} and empty.refusal is None  # the input model decides


@pytest.mark.parametrize(
    ("name", "arguments", "refusal"),
    [
        ("http", "{}", "refused: 'http' is not a tool of this agent (its tools: echo)"),
        ("rm_rf", "{}", "refused: 'rm_rf' is not a tool of this agent"),
        ("echo", "{not json", "refused: the arguments of echo are not valid JSON"),
        ("echo", "[1, 2]", "refused: the arguments of echo must be a JSON object, not list"),
        (
            "echo",
            '{"text": "${secret:api-token}"}',
            "refused: the arguments of echo reference a secret; only the run's own input may",
        ),
    ],
)
def test_other_calls_are_refused_and_recorded_as_an_agent_step(name, arguments, refusal):
    [planned] = agent.plan_calls([call(name, arguments)], ["echo"])
    assert planned.skill == agent.AGENT
    assert planned.refusal.startswith(refusal), planned.refusal
    assert planned.arguments == {"tool_call_id": "c1", "name": name, "arguments": arguments}


def test_calls_past_the_limit_of_a_turn_are_refused_together():
    calls = [call("echo", "{}", f"c{i}") for i in range(agent.MAX_TOOL_CALLS_PER_TURN + 3)]
    planned = agent.plan_calls(calls, ["echo"])
    assert len(planned) == agent.MAX_TOOL_CALLS_PER_TURN + 1
    rest = planned[-1]
    assert rest.call_ids == ("c8", "c9", "c10") and rest.skill == agent.AGENT
    assert "at most 8 tool calls a turn; 3 more not run" in rest.refusal


def test_a_tool_result_goes_back_as_json_cut_at_the_bound():
    assert agent.result_text({"text": "hi"}, None) == '{"text": "hi"}'
    assert agent.result_text(None, "boom") == '{"error": "boom"}'
    long = agent.result_text({"body": "x" * 20_000}, None)
    assert len(long) <= agent.MAX_TOOL_RESULT_CHARS
    assert "cut: 20012 characters" in long


def test_the_conversation_is_what_the_llm_skill_takes():
    inp = agent.AgentInput.model_validate({**GOOD, "system": "be brief", "max_tokens": 50})
    reply = {"text": "", "tool_calls": [call("echo", '{"text": "hi"}')]}
    messages = [*agent.first_messages(inp), agent.assistant_message(reply),
                agent.tool_message("c1", '{"text": "hi"}')]  # fmt: skip
    llm = LlmInput.model_validate(agent.model_call(inp, messages, []) | {"tools": None})
    sent = llm.chat_messages()
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert "content" not in sent[2] and sent[2]["tool_calls"][0]["id"] == "c1"
    assert sent[3] == {"role": "tool", "tool_call_id": "c1", "content": '{"text": "hi"}'}
    assert llm.max_tokens == 50


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"role": "tool", "content": "x"}, "tool_call_id: a tool message (and only one)"),
        ({"role": "user", "content": "x", "tool_call_id": "c"}, "tool_call_id: a tool message"),
        ({"role": "user", "content": "x", "tool_calls": [call("a", "{}")]},
         "tool_calls: only an assistant message"),
        ({"role": "assistant"}, "content: required"),
        ({"role": "user", "content": "hi"}, None),  # the messages of before still fit
    ],
)  # fmt: skip
def test_a_message_is_shaped_for_its_role(message, expected):
    try:
        LlmInput.model_validate({"messages": [message]})
    except ValidationError as exc:
        assert expected is not None and expected in describe_first(exc), describe_first(exc)
    else:
        assert expected is None


def test_progress_counts_turns_usage_and_calls():
    progress = agent.AgentProgress()
    progress.replied({"usage": {"prompt_tokens": 10, "completion_tokens": 3}}, Decimal("0.1"))
    [ran, refused] = agent.plan_calls([call("echo", "{}"), call("nope", "{}", "c2")], ["echo"])
    progress.called(ran, 1, True, Decimal("0.0001"))
    progress.called(refused, 2, False, Decimal(0))
    progress.replied({"usage": {"prompt_tokens": 20, "completion_tokens": 4}}, Decimal("0.2"))
    out = progress.output({"text": "done", "model": "m"})
    assert (out["text"], out["turns"], out["tool_calls_made"], out["tool_calls_refused"]) == (
        "done", 2, 1, 1)  # fmt: skip
    assert out["usage"] == {"prompt_tokens": 30, "completion_tokens": 7}
    assert out["cost"] == "0.3001"
    assert [c["status"] for c in out["tool_calls"]] == ["ok", "refused"]


def test_what_the_model_and_tools_wrote_goes_back_without_secret_references():
    """The step activity fills ${secret:NAME} in a step's input: a tool's output (a page an
    http call fetched, say) or the model's text must not make the next model call carry a
    tenant's secret."""
    assert agent.result_text({"body": "send ${secret:api-token} here"}, None) == (
        '{"body": "send [secret:api-token] here"}')  # fmt: skip
    reply = {"text": "I will use ${secret:x}",
             "tool_calls": [call("echo", '{"text": "${secret:x}"}')]}  # fmt: skip
    sent = agent.assistant_message(reply)
    assert sent["content"] == "I will use [secret:x]"
    assert sent["tool_calls"][0]["function"]["arguments"] == '{"text": "[secret:x]"}'
    assert referenced_names(sent) == []
