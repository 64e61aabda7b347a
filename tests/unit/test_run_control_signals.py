"""Signals that arrive once execution is over are ignored, whatever the phase says yet.

GOVERNANCE_CHECK commits with the first governance write, so between the last step and
that write the phase still reads EXECUTING: the run's ``execution_over`` decides.
"""

import logging

import pytest
from temporalio import workflow

from domain.enums import Phase
from workflows.control import RunControl
from workflows.run_state import RunState
from workflows.run_writes import RunWrites

ACTOR = {"id": "ops-1", "authority": "TENANT_ADMIN"}


@pytest.fixture(autouse=True)
def plain_logger(monkeypatch):
    """RunControl logs through workflow.logger, which needs a workflow event loop."""
    monkeypatch.setattr(workflow, "logger", logging.getLogger("test-run-control"))


def control(phase: Phase, execution_over: bool) -> RunControl:
    """A run's control on its own state object: no workflow, no server."""
    state = RunState(
        run_id="r1", tenant_id="t1", steps_total=2, phase=phase, execution_over=execution_over
    )
    return RunControl(state, RunWrites(state))


def test_pause_and_stop_during_execution_are_taken():
    c = control(Phase.EXECUTING, execution_over=False)
    c.on_pause({"actor": ACTOR})
    c.on_stop({"actor": ACTOR, "reason": "not needed"})
    assert c.pending_pause is not None and c.stop_requested


@pytest.mark.parametrize("phase", [Phase.EXECUTING, Phase.GOVERNANCE_CHECK, Phase.FINALIZING])
def test_pause_resume_stop_after_the_last_step_are_ignored(phase):
    c = control(phase, execution_over=True)
    c.on_pause({"actor": ACTOR})
    c.on_resume({"actor": ACTOR})
    c.on_stop({"actor": ACTOR, "reason": "too late"})
    assert c.pending_pause is None and c.resumes == [] and not c.stop_requested
    assert c.refusals == []


@pytest.mark.parametrize("phase", [Phase.COMPLETED, Phase.FAILED])
def test_signals_to_a_run_that_ended_without_executing_are_ignored(phase):
    c = control(phase, execution_over=False)
    c.on_pause({"actor": ACTOR})
    c.on_stop({"actor": ACTOR, "reason": "too late"})
    assert c.pending_pause is None and not c.stop_requested
