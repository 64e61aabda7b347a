"""The phase machine as a table: every legal and illegal transition, every status."""

import pytest

from domain.enums import Phase, RunStatus
from domain.phases import (
    ALLOWED_STATUSES,
    TRANSITIONS,
    PhaseInvariantError,
    assert_status_allowed,
    check_transition,
)

HAPPY_PATH = [
    (Phase.CREATED, Phase.AUTHORIZED, RunStatus.QUEUED),
    (Phase.AUTHORIZED, Phase.EXECUTING, RunStatus.RUNNING),
    (Phase.EXECUTING, Phase.GOVERNANCE_CHECK, RunStatus.RUNNING),
    (Phase.GOVERNANCE_CHECK, Phase.FINALIZING, RunStatus.RUNNING),
    (Phase.FINALIZING, Phase.COMPLETED, RunStatus.SUCCEEDED),
]


@pytest.mark.parametrize(("current", "target", "status"), HAPPY_PATH)
def test_happy_path_is_legal(current, target, status):
    check_transition(current, target, status)


@pytest.mark.parametrize("phase", [p for p in Phase if p not in (Phase.COMPLETED, Phase.FAILED)])
def test_every_open_phase_can_fail(phase):
    for status in (RunStatus.FAILED, RunStatus.FAILED_POLICY, RunStatus.CANCELLED):
        check_transition(phase, Phase.FAILED, status)


@pytest.mark.parametrize("terminal", [Phase.COMPLETED, Phase.FAILED])
def test_terminal_phases_have_no_exit(terminal):
    for target in Phase:
        with pytest.raises(PhaseInvariantError, match="illegal transition"):
            check_transition(terminal, target, RunStatus.FAILED)


def test_skipping_a_phase_is_illegal():
    with pytest.raises(PhaseInvariantError, match="CREATED → EXECUTING"):
        check_transition(Phase.CREATED, Phase.EXECUTING, RunStatus.RUNNING)
    with pytest.raises(PhaseInvariantError):
        check_transition(Phase.EXECUTING, Phase.COMPLETED, RunStatus.SUCCEEDED)


@pytest.mark.parametrize("phase", list(Phase))
def test_status_invariant_matches_design(phase):
    for status in RunStatus:
        if status in ALLOWED_STATUSES[phase]:
            assert_status_allowed(phase, status)
        else:
            with pytest.raises(PhaseInvariantError, match=f"not allowed in phase {phase}"):
                assert_status_allowed(phase, status)


def test_paused_only_while_executing():
    assert [p for p in Phase if RunStatus.PAUSED in ALLOWED_STATUSES[p]] == [Phase.EXECUTING]


def test_table_covers_every_phase():
    assert set(TRANSITIONS) == set(Phase) == set(ALLOWED_STATUSES)
