"""References to a tenant's secrets in step inputs: ``${secret:NAME}`` inside any string.

Pure. The workflow input, its history and the trace step keep the placeholder; the step
activity substitutes the values right before the skill runs (``substitute``), redacts them
from what the skill returned (``redact``) and records ``secrets_digest`` in the hash chain,
so the chain proves what was sent without holding it.
"""

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
REFERENCE = re.compile(r"\$\{secret:(" + NAME_PATTERN + r")\}")
_NAME = re.compile(NAME_PATTERN)


def is_valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def placeholder(name: str) -> str:
    return "${secret:" + name + "}"


def _strings(value: Any):  # noqa: ANN202 - a generator of str
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _map_strings(value: Any, fn) -> Any:  # noqa: ANN001 - fn: str -> str
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {_map_strings(k, fn): _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_map_strings(item, fn) for item in value]
    return value


def referenced_names(value: Any) -> list[str]:
    """The secret names ``value`` references, sorted, each once."""
    return sorted({m.group(1) for s in _strings(value) for m in REFERENCE.finditer(s)})


def substitute(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with each reference replaced by its secret (every name must be known)."""
    if not secrets:
        return value
    return _map_strings(value, lambda s: REFERENCE.sub(lambda m: secrets[m.group(1)], s))


def _forms(value: str) -> list[str]:
    """How a secret may appear in a response: as is, and escaped inside a JSON string."""
    escaped = json.dumps(value)[1:-1]
    return [value] if escaped == value else [value, escaped]


def redact(value: Any, secrets: Mapping[str, str]) -> Any:
    """``value`` with every occurrence of a secret replaced by its placeholder (longest
    secrets first, so that a secret inside another one cannot leave a fragment)."""
    pairs = [(form, placeholder(name)) for name, secret in secrets.items() if secret
             for form in _forms(secret)]  # fmt: skip
    if not pairs:
        return value
    pairs.sort(key=lambda pair: len(pair[0]), reverse=True)

    def hide(text: str) -> str:
        for secret, shown in pairs:
            text = text.replace(secret, shown)
        return text

    return _map_strings(value, hide)


def secrets_digest(run_id: str, step_index: int, secrets: Mapping[str, str]) -> str:
    """sha256 over the step's identity and the secret values it substituted, by name: whoever
    holds the values can recompute it; the run and step make equal secrets differ per step."""
    content = {"run_id": run_id, "step_index": step_index, "secrets": dict(secrets)}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
