"""sha256 hash chain over trace steps: each hash covers the step and the previous hash."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64

SECRETS_PROOF_KEY = "$secrets_sha256"
"""Under this key, the input a trace step stores carries the digest of the secret values the
step substituted (domain.secret_refs.secrets_digest); step_content moves it into the field
``secrets_sha256`` of what the hash covers. Only steps that used secrets have it, so the
chains written before it verify unchanged; a step input cannot hold the key itself (skill
inputs refuse unknown fields)."""


def canonical_json(content: Mapping[str, Any]) -> str:
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )


def step_hash(previous_hash: str, content: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(previous_hash.encode("ascii"))
    digest.update(canonical_json(content).encode("ascii"))
    return digest.hexdigest()


def first_broken_link(
    steps: Iterable[tuple[int, str, str, Mapping[str, Any]]],
) -> int | None:
    """Index of the first step whose (prev_hash, hash) does not verify, else None.

    ``steps`` yields (step_index, prev_hash, hash, content) in index order.
    """
    expected_prev = GENESIS_HASH
    for index, prev_hash, stored_hash, content in steps:
        if prev_hash != expected_prev or step_hash(prev_hash, content) != stored_hash:
            return index
        expected_prev = stored_hash
    return None


def step_content(
    *,
    run_id: str,
    step_index: int,
    skill: str,
    input: Mapping[str, Any],
    output: Mapping[str, Any],
    cost: Any,
    status: str,
    error: str | None,
) -> dict[str, Any]:
    """What a step's hash covers; cost is fixed to the 6 decimals the database keeps.

    ``input`` is the input as the trace step stores it: with SECRETS_PROOF_KEY when the
    step used secrets, which becomes the field ``secrets_sha256``."""
    stored = dict(input)
    secrets_sha256 = stored.pop(SECRETS_PROOF_KEY, None)
    content = {
        "run_id": run_id,
        "step_index": step_index,
        "skill": skill,
        "input": stored,
        "output": dict(output),
        "cost": f"{Decimal(str(cost)):.6f}",
        "status": status,
        "error": error,
    }
    if secrets_sha256 is not None:
        content["secrets_sha256"] = secrets_sha256
    return content


def with_secrets_proof(input: Mapping[str, Any], secrets_sha256: str | None) -> dict[str, Any]:
    """The input a trace step stores: ``input``, plus the secrets digest if there is one."""
    if secrets_sha256 is None:
        return dict(input)
    return {**input, SECRETS_PROOF_KEY: secrets_sha256}
