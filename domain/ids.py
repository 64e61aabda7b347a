"""Deterministic ids: the same run and action always yield the same id."""

import uuid

GOVERNED_RUNS_NAMESPACE = uuid.UUID("6f1c9a52-2f0b-4a51-9d43-7f7c1c3e2a10")


def derive_id(*parts: object) -> str:
    """uuid5 over the parts joined by '/', as a string."""
    return str(uuid.uuid5(GOVERNED_RUNS_NAMESPACE, "/".join(str(p) for p in parts)))


def run_workflow_id(run_id: str) -> str:
    return f"run-{run_id}"


def run_id_from_workflow_id(workflow_id: str) -> str:
    return workflow_id.removeprefix("run-")


# The operator's own tenant: system incidents and alerts (a dead reactor, a failed
# reconciliation) belong to it. No tenant of runs can have this id (ID_PATTERN in
# domain.models starts with a letter or digit), so no API key of a tenant reaches them.
SYSTEM_TENANT = "_system"
