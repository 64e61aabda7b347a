"""The run's controls with an answer: Workflow Updates whose validators refuse at once.

Next to the ``pause``, ``resume`` and ``stop`` signals (kept: operators send them with the
Temporal CLI), RunWorkflow takes the Updates ``pause_run``, ``resume_run`` and ``stop_run``.
Each validator reads the run's control state and raises ``ControlRefused`` for a malformed
payload, a request the caller's authority may not make or one that does not apply (the
run is not paused, it has ended): the caller learns why at once and the refusal writes no
event into the history (so a flood of refused requests cannot grow it). An accepted update
records intent exactly as the signal does and returns the run's state: a pause or a stop
at once (it takes effect at the next step boundary: ``pause_requested``,
``stop_requested``), a resume once the pause is resolved.

Deterministic workflow code: validators do not change state, handlers only through
workflows.control.RunControl.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain.control import RESUMABLE_BY, may_resume
    from domain.models import ApproveRequest, PauseRequest, ResumeRequest, StopRequest
    from workflows.control import RunControl
    from workflows.errors import describe_validation_error, one_object

MALFORMED = "ControlMalformed"  # the payload is not the request (HTTP 422)
NOT_ALLOWED = "ControlNotAllowed"  # the actor's authority may not do it (HTTP 403)
NOT_APPLICABLE = "ControlNotApplicable"  # the run is not in a state it applies to (HTTP 409)


def refused(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


M = TypeVar("M", bound=BaseModel)


def parsed(name: str, model: type[M], args: tuple[Any, ...]) -> M:
    raw, problem = one_object(args)
    if raw is None:
        raise refused(MALFORMED, f"{name}: {problem}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise refused(MALFORMED, f"{name}: {describe_validation_error(exc)}") from None


class ControlUpdates:
    """Validators and handlers of the control updates of one run."""

    def __init__(self, control: RunControl) -> None:
        self.control = control

    def _open(self, name: str) -> None:
        state = self.control.state
        if state.ended:
            raise refused(NOT_APPLICABLE, f"run {state.run_id} has ended ({state.phase}); "
                          f"cannot {name}")  # fmt: skip
        if state.execution_over:
            raise refused(NOT_APPLICABLE, f"run {state.run_id} has run its last step; "
                          f"cannot {name}")  # fmt: skip

    # ----- pause ------------------------------------------------------------------------

    def validate_pause(self, args: tuple[Any, ...]) -> None:
        parsed("pause", PauseRequest, args)
        self._open("pause")
        control = self.control
        if control.pause is not None or control.pending_pause is not None:
            raise refused(NOT_APPLICABLE, f"run {control.state.run_id} is already paused")
        if control.stop is not None:
            raise refused(NOT_APPLICABLE, f"run {control.state.run_id} is being stopped")

    def pause(self, args: tuple[Any, ...]) -> None:
        """Pause at the next step boundary."""
        self.control.pending_pause = parsed("pause", PauseRequest, args)

    # ----- resume -----------------------------------------------------------------------

    def validate_resume(self, args: tuple[Any, ...]) -> None:
        req = parsed("resume", ResumeRequest, args)
        self._open("resume")
        control = self.control
        pending = control.pause.reason if control.pause else None
        if pending is None and control.pending_pause is not None:
            pending = control.pending_pause.reason
        if pending is None:
            raise refused(NOT_APPLICABLE, f"run {control.state.run_id} is not paused")
        awaited = control.pause.approval if control.pause is not None else None
        if awaited is not None:
            waits = (f"the run waits for the approval of step {awaited.step_index} "
                     f"(approve with digest {awaited.digest})")  # fmt: skip
            raise refused(NOT_APPLICABLE, waits)
        if not may_resume(pending, req.actor.authority):
            allowed = ", ".join(RESUMABLE_BY[pending])
            raise refused(NOT_ALLOWED, f"{req.actor.authority} may not resume a {pending} "
                          f"pause (allowed: {allowed})")  # fmt: skip

    async def resume(self, args: tuple[Any, ...]) -> None:
        """Resume the pause the run is in (or about to enter); returns once it is resolved."""
        control = self.control
        control.resumes.append(parsed("resume", ResumeRequest, args))
        target = control.pauses_held + (0 if control.pause is not None else 1)
        await workflow.wait_condition(
            lambda: control.state.ended or (control.pauses_held >= target and control.pause is None)
        )

    # ----- stop -------------------------------------------------------------------------

    def validate_stop(self, args: tuple[Any, ...]) -> None:
        parsed("stop", StopRequest, args)
        self._open("stop")

    def stop(self, args: tuple[Any, ...]) -> None:
        """Stop at the next step boundary (a repeated stop changes nothing)."""
        if self.control.stop is None:
            self.control.stop = parsed("stop", StopRequest, args)

    # ----- approve ----------------------------------------------------------------------

    def validate_approve(self, args: tuple[Any, ...]) -> None:
        req = parsed("approve", ApproveRequest, args)
        self._open("approve")
        problem = self.control.approval_refusal(req)
        if problem is None:
            return
        kind = NOT_ALLOWED if " may not approve " in problem else NOT_APPLICABLE
        raise refused(kind, problem)

    async def approve(self, args: tuple[Any, ...]) -> None:
        """Approve the step the run holds; returns once the pause is resolved."""
        control = self.control
        control.approvals.append(parsed("approve", ApproveRequest, args))
        target = control.pauses_held
        await workflow.wait_condition(
            lambda: control.state.ended or control.pauses_held > target or control.pause is None
        )
