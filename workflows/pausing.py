"""A paused run: wait for resume or stop, warn before the SLA, apply its timeout behaviour.

Part of RunWorkflow's control (workflows.control); deterministic workflow code.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.control import ControlActivities
    from activities.incidents import IncidentActivities
    from domain.control import RESUMABLE_BY, may_resume
    from domain.enums import (
        Authority,
        IncidentCategory,
        PauseReason,
        PauseTimeoutBehavior,
        RunStatus,
        Severity,
    )
    from domain.messages import IncidentRequest, PauseRecordRequest, PauseUpdateRequest
    from domain.models import Actor, ApproveRequest, AwaitedApproval, PauseRequest, ResumeRequest
    from domain.outcome import IncidentSpec, Outcome
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites

SYSTEM = Actor(id="system:policy-check", authority=Authority.SYSTEM_AUTO)
KEEP_WAITING = object()


class RunControl(Protocol):
    """What a pause needs of the run's control (workflows.control.RunControl)."""

    state: RunState
    writes: RunWrites
    pause: Pause | None
    refusals: list[tuple[str, str, Actor | None]]
    stop: Any

    async def record_refusals(self) -> None: ...
    def drain_resumes(self) -> list[ResumeRequest]: ...
    def drain_approvals(self) -> list[ApproveRequest]: ...
    def approval_refusal(self, req: ApproveRequest) -> str | None: ...

    consumed_digests: set[str]

    def stopped_outcome(self) -> Outcome: ...
    def has_news(self) -> bool: ...
    def accept_policy_state(self) -> None: ...


@dataclass
class Pause:
    number: int
    reason: PauseReason
    actor: Actor
    paused_at: datetime
    sla_deadline: datetime
    resumable_by: tuple[Authority, ...]
    behavior: PauseTimeoutBehavior
    notify_before: timedelta
    warned: bool = False
    escalated: bool = False
    approval: AwaitedApproval | None = None  # APPROVAL_REQUIRED: the step it holds

    @property
    def warn_at(self) -> datetime:
        return self.sla_deadline - self.notify_before

    def next_wake(self) -> datetime | None:
        if not self.warned:
            return self.warn_at
        if not self.escalated:
            return self.sla_deadline
        return None


async def hold(
    control: RunControl, number: int, req: PauseRequest, approval: AwaitedApproval | None = None
) -> Outcome | None:
    """Pause the run until it is resumed — or, holding a step for ``approval``, until that
    step is approved — (None) or must end (an Outcome)."""
    state = control.state
    config = state.config
    now = workflow.now()
    pause = Pause(
        number=number,
        reason=req.reason,
        actor=req.actor,
        paused_at=now,
        sla_deadline=now + timedelta(seconds=config.pause_sla_seconds),
        resumable_by=RESUMABLE_BY[req.reason],
        behavior=config.pause_timeout_behavior,
        notify_before=timedelta(seconds=config.pause_notify_before_seconds),
        approval=approval,
    )
    await control.writes.must(
        ControlActivities.record_pause,
        PauseRecordRequest(
            run_id=state.run_id,
            tenant_id=state.tenant_id,
            pause_no=pause.number,
            reason=pause.reason,
            actor_id=pause.actor.id,
            authority=pause.actor.authority,
            paused_at=pause.paused_at,
            sla_deadline=pause.sla_deadline,
            resumable_by=list(pause.resumable_by),
            timeout_behavior=pause.behavior,
        ),
    )
    control.pause = pause
    control.writes.set_status(RunStatus.PAUSED)
    while True:
        await control.record_refusals()
        for approve in control.drain_approvals():
            problem = control.approval_refusal(approve)
            if problem is not None:
                control.refusals.append(("approve", problem, approve.actor))
                continue
            control.consumed_digests.add(approve.digest)
            await _resolve(control, pause, "APPROVED", approve.actor, digest=approve.digest)
            return None
        for resume in control.drain_resumes():
            if pause.approval is not None:  # only its approval lifts it
                control.refusals.append(("resume", f"the run waits for the approval of step "
                                         f"{pause.approval.step_index} (approve with digest "
                                         f"{pause.approval.digest})", resume.actor))  # fmt: skip
                continue
            if may_resume(pause.reason, resume.actor.authority):
                await _resolve(control, pause, "RESUMED", resume.actor)
                return None
            _refuse(control, resume, pause)
        await control.record_refusals()
        if control.stop is not None:
            await _resolve(control, pause, "STOPPED", control.stop.actor, resume_run=False)
            return control.stopped_outcome()
        if control.timed_out():  # an ESCALATEd pause waits until the run's timeout, no longer
            await _resolve(control, pause, "TIMED_OUT", SYSTEM, resume_run=False)
            return control.timed_out_outcome()
        now = workflow.now()
        if not pause.warned and now >= pause.warn_at:
            await _update(control, pause, "WARNED")
            pause.warned = True
        if now >= pause.sla_deadline and not pause.escalated:
            expired = await _expire(control, pause)
            if expired is not KEEP_WAITING:
                return expired
        wake = pause.next_wake()
        if control.run_deadline is not None:
            wake = control.run_deadline if wake is None else min(wake, control.run_deadline)
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                control.has_news,
                timeout=None if wake is None else max(wake - workflow.now(), timedelta(0)),
            )


async def _expire(control: RunControl, pause: Pause) -> Any:
    """SLA expired: an Outcome (TERMINATE), None (CONTINUE) or KEEP_WAITING (ESCALATE)."""
    state = control.state
    if pause.behavior == PauseTimeoutBehavior.CONTINUE:
        await _resolve(control, pause, "AUTO_RESUMED", SYSTEM)
        return None
    if pause.behavior == PauseTimeoutBehavior.TERMINATE:
        await _resolve(control, pause, "TIMED_OUT", SYSTEM, resume_run=False)
        reason = f"pause ({pause.reason}) not resolved within its SLA"
        spec = IncidentSpec(IncidentCategory.RUN_FAILURE, Severity.HIGH, "Pause SLA expired")
        return Outcome(RunStatus.FAILED, reason, spec)
    key = f"escalate_pause:{pause.number}"
    await control.writes.amend(key, "pause SLA expired (ESCALATE)", [], [("incidents", key)])
    await control.writes.must(
        IncidentActivities.create_for_run,
        IncidentRequest(
            run_id=state.run_id,
            tenant_id=state.tenant_id,
            key=key,
            category=IncidentCategory.PAUSE_ESCALATION,
            severity=Severity.HIGH,
            title=f"Paused run {state.run_id} needs a human",
            description=f"pause ({pause.reason}) passed its SLA; waiting for "
            f"{', '.join(pause.resumable_by)}",
        ),
    )
    await _update(control, pause, "ESCALATED")
    pause.escalated = True
    return KEEP_WAITING


async def _resolve(
    control: RunControl,
    pause: Pause,
    kind: str,
    actor: Actor,
    resume_run: bool = True,
    digest: str | None = None,
) -> None:
    await _update(control, pause, kind, actor, digest)
    control.pause = None
    if control.state.refuse_late_resumes:  # meant for this pause: never for a later one
        for late in control.drain_resumes():
            control.refusals.append(("resume", "the pause it was sent for has ended", late.actor))
    if resume_run:
        control.accept_policy_state()
        control.writes.set_status(RunStatus.RUNNING)


async def _update(
    control: RunControl, pause: Pause, kind: str, actor: Actor = SYSTEM, digest: str | None = None
) -> None:
    await control.writes.must(
        ControlActivities.update_pause,
        PauseUpdateRequest(
            run_id=control.state.run_id,
            tenant_id=control.state.tenant_id,
            pause_no=pause.number,
            kind=kind,
            actor_id=actor.id,
            authority=actor.authority,
            digest=digest,
        ),
    )


def _refuse(control: RunControl, resume: ResumeRequest, pause: Pause) -> None:
    allowed = ", ".join(pause.resumable_by)
    reason = f"{resume.actor.authority} may not resume a {pause.reason} pause (allowed: {allowed})"
    control.refusals.append(("resume", reason, resume.actor))
