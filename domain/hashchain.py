"""sha256 hash chain over trace steps: each hash covers the step and the previous hash."""

import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64


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
    """What a step's hash covers; cost is fixed to the 6 decimals the database keeps."""
    return {
        "run_id": run_id,
        "step_index": step_index,
        "skill": skill,
        "input": dict(input),
        "output": dict(output),
        "cost": f"{Decimal(str(cost)):.6f}",
        "status": status,
        "error": error,
    }
