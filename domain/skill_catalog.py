"""The skills a run may name, and the input each one takes.

The implementations live in ``activities/skills``; this catalog is pure so that input
validation (in the workflow, the CLI and the API) refuses an unknown skill or a bad
skill input before anything is written.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


class _SkillInput(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EchoInput(_SkillInput):
    """Returns its text unchanged."""

    text: str


class TemplateInput(_SkillInput):
    """Renders ``template`` (``$name`` placeholders) with ``variables``."""

    template: str
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)


class HttpInput(_SkillInput):
    """Performs one HTTP request and returns status and body."""

    url: HttpUrl
    method: Literal["GET", "POST", "PUT", "DELETE"] = "GET"
    json_body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class ChatMessage(_SkillInput):
    role: Literal["system", "user", "assistant"]
    content: str


class LlmInput(_SkillInput):
    """One OpenAI-compatible chat completion; cost comes from the returned usage."""

    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0, le=2)

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


SKILL_INPUTS: dict[str, type[_SkillInput]] = {
    "echo": EchoInput,
    "template": TemplateInput,
    "http": HttpInput,
    "llm": LlmInput,
}


class UnknownSkillError(ValueError):
    def __init__(self, skill: str) -> None:
        known = ", ".join(sorted(SKILL_INPUTS))
        super().__init__(f"unknown skill {skill!r} (known skills: {known})")
        self.skill = skill


def validate_skill_input(skill: str, raw: dict[str, Any]) -> _SkillInput:
    """Parse a step's input for its skill; raises UnknownSkillError or ValidationError."""
    model = SKILL_INPUTS.get(skill)
    if model is None:
        raise UnknownSkillError(skill)
    return model.model_validate(raw)


STEP_MAX_ATTEMPTS = 3
"""Attempts of a step activity; the last one records a retryable failure as final."""

STEP_HEARTBEAT_SECONDS = 10
"""A step that stops heartbeating this long (its worker died) is retried elsewhere."""
