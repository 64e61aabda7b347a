"""The llm skill: one chat completion through the official ``openai`` client against
LLM_BASE_URL (OpenAI, vLLM, Ollama, LiteLLM, ... or runtime.chat_completions here), priced
from the returned usage.

- **One retry policy.** The client's own retries are off (``max_retries=0``): the step's
  Temporal retry policy is the only one. An unreachable endpoint, a timeout
  (TIMEOUT_SECONDS), 429 and 5xx are retryable SkillErrors; any other 4xx is final, with
  the endpoint's message; so is a body that is not a chat completion.
- **The egress path.** The endpoint is the operator's choice, so its origin is allowed
  implicitly; the client's ``http_client`` sends through the step's Outbound
  (activities.skills.egress_transport): protected endpoints refused, pinning, redirects
  vetted hop by hop, no cookies, no proxy or credentials from the environment.
- **Tools.** ``tools`` (OpenAI tool definitions) are offered to the model; the tool calls
  it answers with are returned as ``tool_calls`` (``[{id, type, function: {name,
  arguments}}]``, the arguments as the model wrote them, JSON or not) beside ``text``,
  ``model`` and ``usage``; none is run here. The messages may carry them back: an
  assistant message with its ``tool_calls``, and a ``tool`` message per call with its
  ``tool_call_id`` and result (what an agent step sends, workflows.agent_loop).
- **Telemetry.** Each attempt is one ``chat {model}`` span with the GenAI metrics
  (observability.genai).
"""

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.egress import no_cookies, origin_of
from activities.skills.egress_transport import OutboundTransport
from activities.skills.errors import SkillError
from domain.chat_tools import wire_tools
from domain.egress import DEFAULT_PORTS, EgressRule
from domain.skill_catalog import LlmInput
from observability import genai

TIMEOUT_SECONDS = 120.0
"""How long one call may take (each of connecting, sending, waiting for the answer)."""
# The client refuses to start without a key; without LLM_API_KEY none is sent (the
# transport sends only the Authorization it is given).
NO_KEY = "unused"


def price(prompt_tokens: int, completion_tokens: int, ctx: SkillContext) -> Decimal:
    return (
        Decimal(prompt_tokens) * ctx.llm.price_per_1k_input
        + Decimal(completion_tokens) * ctx.llm.price_per_1k_output
    ) / 1000


# An upper bound of the tokens of a prompt: a token is at least one character, and each
# message adds a few tokens of chat framing.
FRAMING_TOKENS_PER_MESSAGE = 8


def reservation(data: LlmInput, ctx: SkillContext) -> Decimal:
    """The most the call can cost: every prompt character a token, plus framing, and the
    whole completion budget (the call is sent with it as max_tokens). The tools offered
    are prompt too: each character of their JSON a token."""
    messages = data.chat_messages()
    prompt_tokens = sum(message_chars(m) + FRAMING_TOKENS_PER_MESSAGE for m in messages)
    if data.tools:
        prompt_tokens += len(json.dumps(wire_tools(data.tools)))
    return price(prompt_tokens, max_tokens(data, ctx), ctx)


def message_chars(message: dict[str, Any]) -> int:
    """The characters of a message the model reads: its content, and the JSON of the tool
    calls an assistant message carries (an agent's conversation, domain.agent)."""
    calls = message.get("tool_calls")
    return len(message.get("content") or "") + (len(json.dumps(calls)) if calls else 0)


def max_tokens(data: LlmInput, ctx: SkillContext) -> int:
    return data.max_tokens if data.max_tokens is not None else ctx.llm.default_max_tokens


@dataclass(frozen=True)
class Reply:
    """What the skill takes from a chat completion."""

    text: str
    model: str
    response_id: str | None
    finish_reason: str | None
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int


def llm(data: LlmInput, ctx: SkillContext) -> SkillOutput:
    request: dict[str, Any] = {
        "model": data.model or ctx.llm.default_model,
        "messages": data.chat_messages(),
        "max_tokens": max_tokens(data, ctx),  # what the reservation counted on
    }
    if data.temperature is not None:
        request["temperature"] = data.temperature
    if data.tools:
        request["tools"] = wire_tools(data.tools)
    endpoint = httpx.URL(ctx.llm.base_url)
    port = endpoint.port or DEFAULT_PORTS.get(endpoint.scheme, 0)
    with genai.chat_call(request["model"], endpoint.host, port,
                         max_tokens=request["max_tokens"],
                         temperature=data.temperature) as call:  # fmt: skip
        reply = reply_of(complete(request, ctx, call), request["model"], call)
        call.responded(
            model=reply.model,
            response_id=reply.response_id,
            finish_reason=reply.finish_reason,
            input_tokens=reply.prompt_tokens,
            output_tokens=reply.completion_tokens,
        )
    output: dict[str, Any] = {
        "text": reply.text,
        "model": reply.model,
        "usage": {"prompt_tokens": reply.prompt_tokens,
                  "completion_tokens": reply.completion_tokens},
    }  # fmt: skip
    if reply.tool_calls:
        output["tool_calls"] = reply.tool_calls
    return SkillOutput(output, price(reply.prompt_tokens, reply.completion_tokens, ctx))


def complete(request: dict[str, Any], ctx: SkillContext, call: genai.ChatCall) -> ChatCompletion:
    """The chat completion for ``request``, sent once through the step's egress path; every
    failure a SkillError (retryable when another attempt may succeed)."""
    logging.getLogger("openai").setLevel(logging.WARNING)  # its debug log holds the prompt
    outbound = ctx.calling_out().allowing(EgressRule.for_url(ctx.llm.base_url))
    key = ctx.llm.api_key
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    transport = OutboundTransport(outbound, timeout=TIMEOUT_SECONDS, headers=auth)
    where = origin_of(ctx.llm.base_url)
    with (
        httpx.Client(transport=transport, timeout=TIMEOUT_SECONDS, follow_redirects=False,
                     trust_env=False, cookies=no_cookies()) as http,
        openai.OpenAI(api_key=key or NO_KEY, base_url=ctx.llm.base_url, max_retries=0,
                      timeout=TIMEOUT_SECONDS, http_client=http) as client,
    ):  # fmt: skip
        try:
            return client.chat.completions.create(**request)
        except openai.APITimeoutError:
            call.failed("timeout")
            raise SkillError(
                f"llm endpoint {where}: no answer within {TIMEOUT_SECONDS:g} s", retryable=True
            ) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            call.failed(genai.error_type(cause))
            raise SkillError(
                f"llm endpoint {where}: {type(cause).__name__}: {cause}", retryable=True
            ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            call.failed(str(status))
            if status == 429 or status >= 500:
                raise SkillError(f"llm endpoint answered {status}", retryable=True) from None
            raise SkillError(
                f"llm endpoint answered {status}: {error_message(exc)}", retryable=False
            ) from None
        except (openai.APIResponseValidationError, ValueError) as exc:
            call.failed("malformed_response")
            raise malformed(exc) from None


def error_message(exc: openai.APIStatusError) -> str:
    """The message of an OpenAI error body, else the start of the body."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:300]
    return exc.response.text[:300]


def malformed(exc: Exception) -> SkillError:
    return SkillError(
        f"llm endpoint returned an unexpected body: {type(exc).__name__}: {exc}", retryable=False
    )


def reply_of(completion: Any, requested_model: str, call: genai.ChatCall) -> Reply:
    """The reply of a chat completion; one that lacks what a reply has is a final error."""
    try:
        choices = getattr(completion, "choices", None)
        if not choices:
            raise ValueError("no choices")
        message = getattr(choices[0], "message", None)
        if message is None:
            raise ValueError("choice 0 has no message")
        content = message.content
        if content is not None and not isinstance(content, str):
            raise TypeError(f"message content is a {type(content).__name__}")
        usage = completion.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", None) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", None) or 0)
        return Reply(
            text=content or "",
            model=str(getattr(completion, "model", None) or requested_model),
            response_id=getattr(completion, "id", None),
            finish_reason=getattr(choices[0], "finish_reason", None),
            tool_calls=[tool_call(c) for c in message.tool_calls or []],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        call.failed("malformed_response")
        raise malformed(exc) from None


def tool_call(found: Any) -> dict[str, Any]:
    if found.type != "function":
        raise TypeError(f"a tool call of type {found.type!r} (only functions are offered)")
    name, arguments = found.function.name, found.function.arguments
    if not isinstance(name, str) or not isinstance(arguments, str):
        raise TypeError("a tool call without a function name and arguments")
    return {"id": found.id, "type": "function", "function": {"name": name, "arguments": arguments}}
