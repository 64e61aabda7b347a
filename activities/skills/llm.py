"""The llm skill: an OpenAI-compatible chat completion, priced from the returned usage.

The endpoint (LLM_BASE_URL) is the operator's choice, so its origin is allowed implicitly;
the call still takes the egress path of every outbound call (protected endpoints, pinning,
redirects vetted hop by hop, no cookies).
"""

from decimal import Decimal

import httpx

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.egress import origin_of
from activities.skills.errors import SkillError
from domain.egress import EgressRule
from domain.skill_catalog import LlmInput


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
    whole completion budget (the call is sent with it as max_tokens)."""
    messages = data.chat_messages()
    prompt_tokens = sum(len(m["content"]) + FRAMING_TOKENS_PER_MESSAGE for m in messages)
    return price(prompt_tokens, max_tokens(data, ctx), ctx)


def max_tokens(data: LlmInput, ctx: SkillContext) -> int:
    return data.max_tokens if data.max_tokens is not None else ctx.llm.default_max_tokens


def llm(data: LlmInput, ctx: SkillContext) -> SkillOutput:
    body: dict = {"model": data.model or ctx.llm.default_model, "messages": data.chat_messages()}
    body["max_tokens"] = max_tokens(data, ctx)  # what the reservation counted on
    if data.temperature is not None:
        body["temperature"] = data.temperature
    headers = {"Authorization": f"Bearer {ctx.llm.api_key}"} if ctx.llm.api_key else {}
    url = ctx.llm.base_url.rstrip("/") + "/chat/completions"
    outbound = ctx.calling_out().allowing(EgressRule.for_url(ctx.llm.base_url))
    try:
        response = outbound.request("POST", url, json=body, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        where = origin_of(url)
        raise SkillError(
            f"llm endpoint {where}: {type(exc).__name__}: {exc}", retryable=True
        ) from None
    if response.status_code == 429 or response.status_code >= 500:
        raise SkillError(f"llm endpoint answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise SkillError(
            f"llm endpoint answered {response.status_code}: {response.text[:300]}",
            retryable=False,
        )
    try:
        payload = response.json()
        content = payload["choices"][0]["message"]["content"]
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        completion_tokens = int(usage.get("completion_tokens", 0))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SkillError(
            f"llm endpoint returned an unexpected body: {exc}", retryable=False
        ) from exc
    return SkillOutput(
        {
            "text": content,
            "model": payload.get("model", body["model"]),
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        },
        price(prompt_tokens, completion_tokens, ctx),
    )
