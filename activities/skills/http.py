"""The http skill: one request through httpx; 5xx and network errors are retryable."""

import httpx

from activities.skills.base import SkillContext, SkillError, SkillOutput
from domain.skill_catalog import HttpInput

MAX_BODY_CHARS = 20_000


def http(data: HttpInput, ctx: SkillContext) -> SkillOutput:
    try:
        response = ctx.http.request(
            data.method,
            str(data.url),
            json=data.json_body,
            headers=data.headers,
            timeout=data.timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise SkillError(f"http {data.method} {data.url}: {exc}", retryable=True) from exc
    if response.status_code >= 500:
        raise SkillError(f"http {data.url} answered {response.status_code}", retryable=True)
    if response.status_code >= 400:
        raise SkillError(f"http {data.url} answered {response.status_code}", retryable=False)
    return SkillOutput(
        {"status": response.status_code, "body": response.text[:MAX_BODY_CHARS]}, ctx.base_cost
    )
