"""OpenAI-style tool definitions an llm step offers the model (``LlmInput.tools``).

The shape the chat-completions API takes: ``{"type": "function", "function": {"name",
"description", "parameters"}}``, ``parameters`` a JSON schema of type object. Names are
unique in a step. The model answers with tool calls; the llm skill returns them as
``tool_calls`` and runs none of them. An agent step (domain.agent) offers its tools built
from the skill catalog's input schemas (``function_tool``).
"""

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError("must be a JSON schema of type 'object'")
        return value


class ToolDefinition(BaseModel):
    """One tool the model may call."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDefinition


def _unique_names(tools: list[ToolDefinition]) -> list[ToolDefinition]:
    names = [t.function.name for t in tools]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"tool names must be unique: {', '.join(repeated)} named more than once")
    return tools


ToolDefinitions = Annotated[
    list[ToolDefinition], Field(min_length=1), AfterValidator(_unique_names)
]
"""A step's tools: at least one, each name once."""


def wire_tools(tools: list[ToolDefinition]) -> list[dict[str, Any]]:
    """The tools as the request carries them (unset fields left out)."""
    return [t.model_dump(exclude_none=True) for t in tools]


def function_tool(name: str, description: str, schema: dict[str, Any]) -> ToolDefinition:
    """The tool a skill is for a model: its name, its description and its input's JSON
    schema as the parameters (pydantic's ``title`` keys left out: the name says it)."""
    return ToolDefinition(
        function=FunctionDefinition(
            name=name, description=description or None, parameters=_untitled(schema)
        )
    )


def _untitled(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _untitled(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}  # fmt: skip
    if isinstance(schema, list):
        return [_untitled(v) for v in schema]
    return schema
