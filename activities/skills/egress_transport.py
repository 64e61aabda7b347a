"""An httpx transport that sends each request through a step's Outbound (the egress path).

The openai client takes an ``http_client``; the llm skill gives it an httpx.Client whose
transport is this one, so every request of the client takes the one path of every outbound
call (activities.skills.egress): the target vetted and pinned, redirects vetted hop by hop,
no cookies, nothing from the environment. The transport opens no connection itself.

What reaches the endpoint is the request's JSON body, its Content-Type, Accept and
User-Agent, and the headers the transport was built with (the endpoint's Authorization) —
no other header the client set (OPENAI_ORG_ID, OPENAI_PROJECT_ID or OPENAI_CUSTOM_HEADERS
from the worker's environment, the SDK's platform headers). The Outbound's one timeout
covers each hop (connect, write, read).
"""

import json
from collections.abc import Mapping

import httpx

from activities.skills.egress import Outbound
from activities.skills.errors import SkillError

FORWARDED = frozenset({"accept", "content-type", "user-agent"})
# The Outbound's client has decoded the body: these no longer describe the bytes passed on.
DECODED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class OutboundTransport(httpx.BaseTransport):
    """Hands each request to ``outbound.request`` and the final answer back to the client."""

    def __init__(
        self, outbound: Outbound, *, timeout: float, headers: Mapping[str, str] | None = None
    ) -> None:
        self.outbound = outbound
        self.timeout = timeout
        self.headers = dict(headers or {})

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        try:
            body = json.loads(content) if content else None
        except ValueError:
            raise SkillError(
                "the model client sent a body that is not JSON", retryable=False
            ) from None
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        headers.update(self.headers)
        answer = self.outbound.request(
            request.method, str(request.url), timeout=self.timeout, headers=headers, json=body
        )
        kept = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in DECODED]
        return httpx.Response(answer.status_code, headers=kept, content=answer.content)
