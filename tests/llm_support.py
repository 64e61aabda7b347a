"""What the llm skill is handed by the step activity, built for tests that call it directly."""

from decimal import Decimal

import httpx

from activities.skills.base import LlmEndpoint, SkillContext
from activities.skills.egress import DeploymentEndpoints, Egress

PRICE_IN, PRICE_OUT = Decimal("0.00015"), Decimal("0.0006")  # the settings' defaults


def context(base_url: str, *, api_key: str = "", protected=(7233, 8233, 8000)) -> SkillContext:
    """The endpoint (LLM_BASE_URL, LLM_API_KEY) and tenant acme's Outbound, no allow-list;
    ``protected``: the deployment's ports."""
    egress = Egress(operator_rules=(), deployment=DeploymentEndpoints(ports=tuple(protected)),
                    tls=httpx.create_ssl_context())  # fmt: skip
    endpoint = LlmEndpoint(base_url, api_key, "gpt-4o-mini", PRICE_IN, PRICE_OUT)
    return SkillContext(endpoint, Decimal("0.0001"), egress.for_tenant("acme", ()))
