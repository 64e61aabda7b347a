"""What the local chat-completions server (runtime.chat_completions) answers: scripted turns.

A script is a list of turns. A request is answered with the turn whose index is the number
of assistant messages already in its conversation: the first call of a conversation gets
turn 0, the call that sends the tool results back gets turn 1, and a request sent again (a
retry, a worker killed mid-call) gets the same turn as before. Past the last turn the last
one is answered again. Nothing here keeps state between requests.

Turns:

- ``Turn.reply("text")``: an assistant message.
- ``Turn.calls(ToolCall("name", {"a": 1}), ...)``: tool calls (``finish_reason``
  ``tool_calls``); arguments given as a string are sent as they are (not JSON, say).
- ``Turn.failure(500)`` (429, 400, ...): that status with an OpenAI error body.
- ``Turn.malformed('...')``: a 200 whose body is the given text, not a chat completion.
- ``Turn.redirect(url)``: a 307 to ``url``.
- ``turn.after(seconds)``: the same turn, answered that many seconds late; ``headers=``
  on any of them adds response headers (a ``Set-Cookie``, say).

Token usage is counted (``counted_usage``) unless a turn or the server fixes it.

``DEMO_AGENT_SCRIPT`` is the demo's model (cli.demo, model ``DEMO_AGENT_MODEL``): an agent
that calls two tools, then one its tenant's rule blocks.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

# The type and code of an OpenAI error body, by status.
ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
SERVER_ERROR = ("server_error", None)
DEFAULT_REPLY_CHARS = 200
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3


@dataclass(frozen=True)
class ToolCall:
    """One call the scripted model asks for."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, sort_keys=True)


@dataclass(frozen=True)
class Turn:
    """One answer of a script (build it with the class methods)."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    status: int = 200
    error: dict[str, Any] | None = None  # the OpenAI error object of a failure
    raw: str | None = None  # a body sent as it is
    location: str | None = None  # a redirect's target
    delay: float = 0.0  # seconds before the answer
    model: str | None = None  # the model the reply names (None: the one requested)
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens; None: counted
    headers: tuple[tuple[str, str], ...] = ()  # sent with the answer (a Set-Cookie, say)

    @classmethod
    def reply(cls, text: str, **fields: Any) -> "Turn":
        return cls(text=text, **fields)

    @classmethod
    def calls(cls, *calls: ToolCall, text: str | None = None, **fields: Any) -> "Turn":
        if not calls:
            raise ValueError("Turn.calls needs at least one ToolCall")
        return cls(text=text, tool_calls=calls, **fields)

    @classmethod
    def failure(cls, status: int, message: str | None = None, **fields: Any) -> "Turn":
        if status < 400:
            raise ValueError(f"a failure has a status of 400 or more, not {status}")
        kind, code = ERROR_KINDS.get(status, SERVER_ERROR if status >= 500 else (None, None))
        error = {
            "message": message or f"scripted failure {status}",
            "type": kind or "invalid_request_error",
            "param": None,
            "code": code,
        }
        return cls(status=status, error=error, **fields)

    @classmethod
    def malformed(cls, body: str = '{"object": "chat.completion"}', **fields: Any) -> "Turn":
        return cls(raw=body, **fields)

    @classmethod
    def redirect(cls, location: str, status: int = 307, **fields: Any) -> "Turn":
        return cls(status=status, location=location, **fields)

    def after(self, seconds: float) -> "Turn":
        return replace(self, delay=seconds)


def turn_index(messages: list[dict[str, Any]]) -> int:
    """Which turn of a script answers this conversation: its assistant messages so far."""
    return sum(1 for m in messages if m.get("role") == "assistant")


def scripted_turn(turns: tuple[Turn, ...], messages: list[dict[str, Any]]) -> Turn:
    return turns[min(turn_index(messages), len(turns) - 1)]


def content_text(content: Any) -> str:
    """A message's content as text (a list of content parts: their text, joined)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return json.dumps(content)


def default_turn(messages: list[dict[str, Any]]) -> Turn:
    """The reply to a request that names no script: ``echo: `` and its last user message
    (its first DEFAULT_REPLY_CHARS characters)."""
    users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    prompt = users[-1] if users else ""
    if len(prompt) > DEFAULT_REPLY_CHARS:
        prompt = prompt[:DEFAULT_REPLY_CHARS] + "…"
    return Turn.reply(f"echo: {prompt}")


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def counted_usage(body: dict[str, Any], turn: Turn) -> tuple[int, int]:
    """(prompt, completion) tokens, a token per CHARS_PER_TOKEN characters (rounded up):
    every message plus TOKENS_PER_MESSAGE, and the tools offered; the reply's text and
    tool calls (at least one token)."""
    prompt = sum(
        tokens(content_text(m.get("content"))) + TOKENS_PER_MESSAGE for m in body["messages"]
    )
    if body.get("tools"):
        prompt += tokens(json.dumps(body["tools"]))
    completion = tokens(turn.text or "") + sum(
        tokens(c.name) + tokens(c.arguments_text()) for c in turn.tool_calls
    )
    return prompt, max(completion, 1)


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def completion_body(
    body: dict[str, Any], turn: Turn, usage: tuple[int, int] | None, created: int
) -> dict[str, Any]:
    """The chat completion that answers ``body`` with ``turn``; its ids derive from the
    request, so the same request gets the same ids. A text longer than the request's
    max_tokens is cut to it (``finish_reason`` ``length``)."""
    prompt_tokens, completion_tokens = turn.usage or usage or counted_usage(body, turn)
    text, finish = turn.text, "tool_calls" if turn.tool_calls else "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and completion_tokens > limit:
        completion_tokens, finish = limit, "length"
        if text is not None:
            text = text[: limit * CHARS_PER_TOKEN]
    request_id = digest(body)
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{digest(request_id, i)[:24]}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_text()},
            }
            for i, call in enumerate(turn.tool_calls)
        ]
    return {
        "id": f"chatcmpl-{request_id[:24]}",
        "object": "chat.completion",
        "created": created,
        "model": turn.model or body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


DEMO_AGENT_MODEL = "demo-agent"
DEMO_AGENT_SCRIPT = (
    Turn.calls(
        ToolCall("echo", {"text": "ticket 42: the printer on floor 3 is on fire"}),
        ToolCall(
            "template",
            {
                "template": "$priority: $what",
                "variables": {"priority": "P1", "what": "printer fire, floor 3"},
            },
        ),
    ),
    Turn.calls(ToolCall("http", {"url": "https://status.example.com/api/printers/3"})),
    Turn.reply("P1: the printer on floor 3 is on fire; facilities are paged."),
)
"""Turn 0: two tool calls (echo, template); turn 1: an http call (the demo's rule blocks
it); turn 2, never reached in the demo: the answer."""
