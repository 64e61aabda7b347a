"""The http skill: one request under the egress policy; 5xx and network errors are retryable.

Messages name the request's origin (scheme://host:port), never its path or query; the
request goes through activities.skills.egress like every outbound call.
"""

import httpx

from activities.skills.base import SkillContext, SkillOutput
from activities.skills.egress import origin_of
from activities.skills.errors import SkillError
from domain.skill_catalog import HttpInput

MAX_BODY_CHARS = 20_000


def http(data: HttpInput, ctx: SkillContext) -> SkillOutput:
    where = f"{data.method} {origin_of(str(data.url))}"
    try:
        response = ctx.calling_out().request(
            data.method,
            str(data.url),
            json=data.json_body,
            headers=data.headers,
            timeout=data.timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise SkillError(f"http {where}: {type(exc).__name__}: {exc}", retryable=True) from None
    if response.status_code >= 500:
        raise SkillError(f"http {where} answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise SkillError(f"http {where} answered {response.status_code}", retryable=False)
    return SkillOutput(
        {"status": response.status_code, "body": response.text[:MAX_BODY_CHARS]}, ctx.base_cost
    )
