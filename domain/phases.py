"""The run phase machine as a transition table, with the phase→status invariant."""

from domain.enums import Phase, RunStatus

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CREATED: frozenset({Phase.AUTHORIZED, Phase.FAILED}),
    Phase.AUTHORIZED: frozenset({Phase.EXECUTING, Phase.FAILED}),
    Phase.EXECUTING: frozenset({Phase.GOVERNANCE_CHECK, Phase.FAILED}),
    Phase.GOVERNANCE_CHECK: frozenset({Phase.FINALIZING, Phase.FAILED}),
    Phase.FINALIZING: frozenset({Phase.COMPLETED, Phase.FAILED}),
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
}

ALLOWED_STATUSES: dict[Phase, frozenset[RunStatus]] = {
    Phase.CREATED: frozenset({RunStatus.QUEUED}),
    Phase.AUTHORIZED: frozenset({RunStatus.QUEUED}),
    Phase.EXECUTING: frozenset({RunStatus.RUNNING, RunStatus.PAUSED}),
    Phase.GOVERNANCE_CHECK: frozenset({RunStatus.RUNNING}),
    Phase.FINALIZING: frozenset({RunStatus.RUNNING}),
    Phase.COMPLETED: frozenset({RunStatus.SUCCEEDED}),
    Phase.FAILED: frozenset({RunStatus.FAILED, RunStatus.FAILED_POLICY, RunStatus.CANCELLED}),
}


class PhaseInvariantError(ValueError):
    """A transition or a (phase, status) pair that the contract forbids."""


def assert_status_allowed(phase: Phase, status: RunStatus) -> None:
    if status not in ALLOWED_STATUSES[phase]:
        allowed = ", ".join(sorted(ALLOWED_STATUSES[phase]))
        raise PhaseInvariantError(f"status {status} is not allowed in phase {phase} ({allowed})")


def check_transition(current: Phase, target: Phase, status: RunStatus) -> None:
    """Raise PhaseInvariantError unless current → target with status is legal."""
    if target not in TRANSITIONS[current]:
        raise PhaseInvariantError(f"illegal transition {current} → {target}")
    assert_status_allowed(target, status)
