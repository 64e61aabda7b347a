"""What a skill receives and returns, and how it reports failure."""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx


class SkillError(Exception):
    """A skill failed; ``retryable`` says whether another attempt could succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class LlmEndpoint:
    base_url: str
    api_key: str
    default_model: str
    price_per_1k_input: Decimal
    price_per_1k_output: Decimal


@dataclass
class SkillContext:
    """Dependencies skills share; built once in worker.py."""

    http: httpx.Client
    llm: LlmEndpoint
    base_cost: Decimal


@dataclass(frozen=True)
class SkillOutput:
    output: dict[str, Any]
    cost: Decimal
    details: dict[str, Any] = field(default_factory=dict)
