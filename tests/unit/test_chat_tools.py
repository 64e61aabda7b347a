"""The tools an llm step offers (domain.chat_tools, LlmInput.tools): the shape the API takes,
refused with an error naming the field, and what the request carries."""

import pytest
from pydantic import ValidationError

from domain.chat_tools import wire_tools
from domain.skill_catalog import LlmInput
from domain.validation_errors import describe_errors


def tool(name: str = "lookup", **function) -> dict:
    return {"type": "function", "function": {"name": name, **function}}


def test_tools_are_optional_and_carried_without_unset_fields():
    assert LlmInput(prompt="hi").tools is None
    data = LlmInput.model_validate(
        {
            "prompt": "hi",
            "tools": [tool(parameters={"type": "object"}), {"function": {"name": "b"}}],
        }
    )
    assert wire_tools(data.tools) == [
        tool(parameters={"type": "object"}),
        tool("b"),  # the type defaults to function
    ]


@pytest.mark.parametrize(
    ("tools", "problem"),
    [
        ([], "tools: List should have at least 1 item"),
        ([tool("has space")], "tools.0.function.name: String should match pattern"),
        ([tool("x" * 65)], "tools.0.function.name: String should match pattern"),
        ([{"type": "retrieval", "function": {"name": "a"}}],
         "tools.0.type: Input should be 'function'"),
        ([tool(parameters={"type": "array"})],
         "tools.0.function.parameters: Value error, must be a JSON schema of type 'object'"),
        ([tool(), tool("other"), tool()],
         "tools: Value error, tool names must be unique: lookup named more than once"),
        ([tool(surprise=1)], "tools.0.function.surprise: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_a_bad_tool_is_refused_naming_the_field(tools, problem):
    with pytest.raises(ValidationError) as refused:
        LlmInput.model_validate({"prompt": "hi", "tools": tools})
    assert problem in describe_errors(refused.value.errors(include_url=False))
