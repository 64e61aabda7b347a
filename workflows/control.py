"""Run control inside RunWorkflow: signals, mid-execution policy checks and pauses.

Signal handlers only validate and record intent; the workflow acts on it at the next
checkpoint (before each step), where it may write through activities.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.control import ControlActivities
    from domain.continuation import RunContinuation
    from domain.control import RESUMABLE_BY, check_due, may_resume
    from domain.enums import (
        IncidentCategory,
        PauseReason,
        PolicyDecision,
        RunStatus,
        Severity,
        ViolationType,
    )
    from domain.messages import (
        AuthorizeResult,
        PolicyCheckRequest,
        RefusalRequest,
        StepResult,
    )
    from domain.models import (
        Actor,
        ApproveRequest,
        AwaitedApproval,
        PauseRequest,
        PauseView,
        ResumeRequest,
        StopRequest,
    )
    from domain.outcome import IncidentSpec, Outcome
    from workflows.errors import describe_validation_error, is_cancellation, one_object, root_cause
    from workflows.pausing import SYSTEM, Pause, hold
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites

SLOT_WAIT_FIRST_SECONDS = 0.5
SLOT_WAIT_MAX_SECONDS = 4.0

TERMINAL_STATUS = {
    ViolationType.MANUAL_STOP: RunStatus.CANCELLED,
    ViolationType.BUDGET_EXCEEDED: RunStatus.FAILED_POLICY,
    ViolationType.TENANT_SUSPENDED: RunStatus.FAILED_POLICY,
}


class RunControl:
    """The control state of one run: the intent its signals recorded, its policy-check
    baseline and throttle, and its current pause."""

    def __init__(self, state: RunState, writes: RunWrites) -> None:
        self.state = state
        self.writes = writes
        self.pending_pause: PauseRequest | None = None
        self.resumes: list[ResumeRequest] = []
        self.approvals: list[ApproveRequest] = []
        self.consumed_digests: set[str] = set()  # approvals used: never again
        self.stop: StopRequest | None = None
        self.refusals: list[tuple[str, str, Actor | None]] = []
        self.pause: Pause | None = None
        self._pauses = 0
        self._refusals_recorded = 0
        self._started_at: datetime | None = None
        self._stop_applied = False  # the run ended by its stop (after_execution refuses none)
        # When the run's run_timeout_seconds is over (patch run-timeout-enforced), else None.
        self.run_deadline: datetime | None = None
        self._baseline: dict[str, Any] = {}
        self._last_check_at: datetime | None = None
        self._checked_at_open = False
        self._steps_since_check = 0
        self._forced = False
        self._budget_warned = False
        self._next_baseline: dict[str, Any] | None = None

    # ----- signals (validate, record intent, never block) ----------------------------

    def _parse(self, name: str, model: type[BaseModel], args: tuple[Any, ...]) -> Any:
        """The signal's payload as ``model``; anything else is refused (audited at the next
        checkpoint) and changes nothing."""
        raw, problem = one_object(args)
        if raw is None:
            self.refusals.append((name, f"malformed: {problem}", None))
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self.refusals.append((name, f"malformed: {describe_validation_error(exc)}", None))
            return None

    def _ended(self, name: str) -> bool:
        # Execution is over once the last step has run, before GOVERNANCE_CHECK commits
        # (with the first governance write), or when the run ended without executing.
        if self.state.execution_over or self.state.ended:
            workflow.logger.info("%s signal after execution ended: ignored", name)
            return True
        return False

    def on_pause(self, *args: Any) -> None:
        req = self._parse("pause", PauseRequest, args)
        if req is not None and not self._ended("pause") and self.pause is None:
            self.pending_pause = req

    def on_resume(self, *args: Any) -> None:
        req = self._parse("resume", ResumeRequest, args)
        if req is None or self._ended("resume"):
            return
        if self.pause is None and self.pending_pause is None:
            self.refusals.append(("resume", "run is not paused", req.actor))
            return
        self.resumes.append(req)

    def on_approve(self, *args: Any) -> None:
        req = self._parse("approve", ApproveRequest, args)
        if req is None or self._ended("approve"):
            return
        problem = self.approval_refusal(req)
        if problem is not None:
            self.refusals.append(("approve", problem, req.actor))
            return
        self.approvals.append(req)

    def approval_refusal(self, req: ApproveRequest) -> str | None:
        """Why this approval is refused, if it is: none is awaited, its digest names another
        step (or one already approved), or its authority may not lift the pause."""
        if req.digest in self.consumed_digests:
            return f"approval {req.digest[:12]}… was already used"
        awaited = self.pause.approval if self.pause is not None else None
        if awaited is None:
            return "no approval is awaited"
        if req.digest != awaited.digest:
            return (f"approval {req.digest[:12]}… is not for the step awaited (step "
                    f"{awaited.step_index}, digest {awaited.digest})")  # fmt: skip
        if not may_resume(PauseReason.APPROVAL_REQUIRED, req.actor.authority):
            allowed = ", ".join(RESUMABLE_BY[PauseReason.APPROVAL_REQUIRED])
            return f"{req.actor.authority} may not approve (allowed: {allowed})"
        return None

    def on_stop(self, *args: Any) -> None:
        req = self._parse("stop", StopRequest, args)
        if req is not None and not self._ended("stop") and self.stop is None:
            self.stop = req

    @property
    def pauses_held(self) -> int:
        """How many pauses the run has entered (the current one's number, while paused)."""
        return self._pauses

    @property
    def stop_requested(self) -> bool:
        return self.stop is not None

    def pause_view(self) -> PauseView | None:
        p = self.pause
        if p is None:
            return None
        return PauseView(
            reason=p.reason,
            paused_by=p.actor.id,
            paused_at=p.paused_at.isoformat(),
            sla_deadline=p.sla_deadline.isoformat(),
            resumable_by=list(p.resumable_by),
            timeout_behavior=p.behavior,
            escalated=p.escalated,
            approval=p.approval,
        )

    # ----- continue-as-new (workflows.continuation) -----------------------------------

    @property
    def quiescent(self) -> bool:
        """Nothing is in flight: no pause held or asked for, no stop, no resume, approval or
        refusal waiting to be acted on, no policy state awaiting a resume — what a
        continue-as-new may leave behind without carrying it."""
        return (self.pause is None and self.pending_pause is None and self.stop is None
                and not self.resumes and not self.approvals and not self.refusals
                and self._next_baseline is None)  # fmt: skip

    def carried(self) -> dict[str, Any]:
        """This control's part of a RunContinuation (domain.continuation); only a quiescent
        control is carried."""
        assert self.quiescent, "a run continues as new only between pauses and signals"
        return {
            "consumed_digests": sorted(self.consumed_digests),
            "pauses": self._pauses,
            "refusals_recorded": self._refusals_recorded,
            "started_at": self._started_at,
            "run_deadline": self.run_deadline,
            "baseline": dict(self._baseline),
            "last_check_at": self._last_check_at,
            "checked_at_open": self._checked_at_open,
            "steps_since_check": self._steps_since_check,
            "forced": self._forced,
            "budget_warned": self._budget_warned,
        }

    def restore(self, carried: RunContinuation) -> None:
        """Take over the decisions of the run before this continue-as-new."""
        self.consumed_digests = set(carried.consumed_digests)
        self._pauses, self._refusals_recorded = carried.pauses, carried.refusals_recorded
        self._started_at, self.run_deadline = carried.started_at, carried.run_deadline
        self._baseline = dict(carried.baseline)
        self._last_check_at, self._checked_at_open = carried.last_check_at, carried.checked_at_open
        self._steps_since_check, self._forced = carried.steps_since_check, carried.forced
        self._budget_warned = carried.budget_warned

    # ----- checkpoints ----------------------------------------------------------------

    def start(self, started_at: datetime, auth: AuthorizeResult, checked: bool = False) -> None:
        """The run is authorized; ``checked``: runs.open recorded the check before step 0."""
        self._started_at = started_at
        if self.state.run_timeout_enforced:  # in workflow time (the database's clock may differ)
            timeout = timedelta(seconds=self.state.config.run_timeout_seconds)
            self.run_deadline = workflow.now() + timeout
        if checked:
            self._checked_at_open = True
            self._last_check_at = workflow.now()
        self._baseline = {
            "limits_version": auth.limits_version,
            "policy_version": auth.policy_version,
            "enabled_rule_ids": auth.enabled_rule_ids,
        }

    def after_step(self, cost: Decimal) -> None:
        self._steps_since_check += 1
        budget = self.state.budget
        if budget is not None and cost > budget:
            self._forced = True
        percent = self.state.config.budget_warning_percent
        if percent and budget and not self._budget_warned and cost * 100 >= budget * percent:
            # Once: the run holds at the next step boundary, for TENANT_ADMIN to lift.
            self._budget_warned = True
            if self.pending_pause is None:
                self.pending_pause = PauseRequest(reason=PauseReason.BUDGET_WARNING, actor=SYSTEM)

    async def checkpoint(self, index: int) -> Outcome | None:
        """Before step ``index``: act on signals and policy; may wait while paused."""
        await self.record_refusals()
        if self.stop is not None:
            return self.stopped_outcome()
        if self.timed_out():
            return self.timed_out_outcome()
        outcome = await self._policy_check(index)
        if outcome is not None:
            return outcome
        if self.pending_pause is not None:
            return await self._hold(self.pending_pause)
        return None

    async def admitted_step(
        self,
        at: int,
        attempt: Callable[[str | None], Awaitable[StepResult]],
        could_not_run: Callable[[str], Outcome],
        waiting: Callable[[], None] | None = None,
    ) -> StepResult | Outcome:
        """One step at trace index ``at``, as every step runs (planned or an agent's): the
        checkpoint first, then ``attempt(approved_digest)`` — its step activity — again once
        approved (REQUIRE_APPROVAL) or when a steps-in-flight slot is free. Its result (a
        prevention included: the caller's to act on), or the Outcome that ends the run: the
        checkpoint's, the approval pause's, or ``could_not_run(cause)`` when the activity
        failed. An exception ``attempt`` raises before it schedules anything is the caller's.
        ``waiting`` is called before each wait for a free slot of a step not yet approved
        (nothing of it in flight): the run may continue as new there."""
        waits = 0
        approved: str | None = None  # the digest of this step's approval, once given
        while True:
            stopped = await self.checkpoint(at)
            if stopped is not None:
                return stopped
            try:
                result = await attempt(approved)
            except ActivityError as exc:
                if is_cancellation(exc):
                    raise asyncio.CancelledError() from None
                return could_not_run(root_cause(exc))
            if result.approval_required is not None:  # held until approved
                ended = await self.await_approval(result.approval_required)
                if ended is not None:
                    return ended
                approved = result.approval_required.digest
                continue
            if not result.waiting_for_slot:
                return result
            if waiting is not None and approved is None:
                waiting()
            waits += 1
            await self.wait_for_slot(waits)

    async def wait_for_slot(self, waits: int) -> None:
        """The tenant has no free steps-in-flight slot: wait (in workflow time, backing off
        to SLOT_WAIT_MAX_SECONDS) before the step is tried again; a stop, a pause or a
        refused signal ends the wait early (the next checkpoint acts on it)."""
        delay = min(SLOT_WAIT_FIRST_SECONDS * 2 ** (waits - 1), SLOT_WAIT_MAX_SECONDS)
        with contextlib.suppress(TimeoutError):  # asyncio.TimeoutError, since 3.11
            await workflow.wait_condition(self._should_act, timeout=timedelta(seconds=delay))

    def _should_act(self) -> bool:
        return self.stop is not None or self.pending_pause is not None or bool(self.refusals)

    def timed_out(self) -> bool:
        return self.run_deadline is not None and workflow.now() >= self.run_deadline

    def timed_out_outcome(self) -> Outcome:
        """Past run_timeout_seconds: the run fails at the next step boundary or pause."""
        seconds = self.state.config.run_timeout_seconds
        reason = f"run timeout: not done within run_timeout_seconds={seconds}"
        spec = IncidentSpec(IncidentCategory.RUN_FAILURE, Severity.HIGH, "Run timed out")
        return Outcome(RunStatus.FAILED, reason, spec)

    def stopped_outcome(self) -> Outcome:
        """The run's end by its stop (a stop acted on: never refused afterwards)."""
        assert self.stop is not None
        self._stop_applied = True
        reason = (
            f"stopped by {self.stop.actor.id} ({self.stop.actor.authority}): {self.stop.reason}"
        )
        return Outcome(RunStatus.CANCELLED, reason, violations=[ViolationType.MANUAL_STOP])

    async def _policy_check(self, index: int) -> Outcome | None:
        config = self.state.config
        if not config.policy_check_enabled:
            return None
        if index == 0 and self._checked_at_open:
            return None
        now = workflow.now()
        due = check_due(
            step_index=index,
            forced=self._forced,
            last_check_at=self._last_check_at,
            now=now,
            steps_since_check=self._steps_since_check,
            interval=timedelta(seconds=config.policy_check_interval_seconds),
            min_steps=config.policy_check_min_steps,
        )
        if not due:
            return None
        result = await self.writes.saga(
            ControlActivities.check_policy,
            PolicyCheckRequest(
                run_id=self.state.run_id,
                tenant_id=self.state.tenant_id,
                step_index=index,
                cost=self.state.cost,
                run_budget=self.state.budget,
                **self._baseline,
            ),
        )
        self._last_check_at, self._steps_since_check, self._forced = now, 0, False
        if result.decision == PolicyDecision.TERMINATE:
            first = next(v for v in result.violations if v in TERMINAL_STATUS)
            reason = (
                f"terminated by policy check before step {index}: {', '.join(result.violations)}"
            )
            incident = None
            if first == ViolationType.BUDGET_EXCEEDED:
                incident = IncidentSpec(
                    IncidentCategory.BUDGET_BREACH, Severity.HIGH, "Budget exceeded"
                )
            elif first == ViolationType.TENANT_SUSPENDED:
                incident = IncidentSpec(
                    IncidentCategory.POLICY_VIOLATION, Severity.MEDIUM, "Tenant suspended"
                )
            if result.budget_limit is not None and first == ViolationType.BUDGET_EXCEEDED:
                self.state.budget = result.budget_limit
            return Outcome(TERMINAL_STATUS[first], reason, incident, list(result.violations))
        if result.decision == PolicyDecision.PAUSE:
            # Resuming accepts the new policy state as the run's baseline.
            self._next_baseline = {
                "limits_version": result.limits_version,
                "policy_version": result.policy_version,
                "enabled_rule_ids": result.enabled_rule_ids,
            }
            return await self._hold(PauseRequest(reason=PauseReason.POLICY_CHANGE, actor=SYSTEM))
        return None

    # ----- pauses (workflows.pausing) ---------------------------------------------

    async def _hold(self, req: PauseRequest) -> Outcome | None:
        self.pending_pause = None
        self._pauses += 1
        return await hold(self, self._pauses, req)

    async def await_approval(self, awaited: AwaitedApproval) -> Outcome | None:
        """Hold the run (APPROVAL_REQUIRED) until the step ``awaited`` names is approved
        (None) or the run must end (an Outcome)."""
        req = PauseRequest(reason=PauseReason.APPROVAL_REQUIRED, actor=SYSTEM)
        self._pauses += 1
        return await hold(self, self._pauses, req, approval=awaited)

    def has_news(self) -> bool:
        """Something a paused run must act on arrived."""
        return (bool(self.resumes) or bool(self.approvals) or self.stop is not None
                or bool(self.refusals))  # fmt: skip

    def drain_resumes(self) -> list[ResumeRequest]:
        resumes, self.resumes = self.resumes, []
        return resumes

    def drain_approvals(self) -> list[ApproveRequest]:
        approvals, self.approvals = self.approvals, []
        return approvals

    def accept_policy_state(self) -> None:
        """Resuming a policy pause makes the policy state it saw the run's new baseline."""
        if self._next_baseline is not None:
            self._baseline, self._next_baseline = self._next_baseline, None

    async def after_execution(self) -> None:
        """Execution is over (patch ``late-control-refused``): a stop or a pause that arrived
        during the last step (or the step that ended the run) has nothing left to act on —
        it is refused, audited like any refusal, and the status no longer says it is
        requested; refusals not yet recorded are recorded now."""
        late = "arrived while the run's last step ran: no step was left to"
        if self.stop is not None and not self._stop_applied:
            reason = f"{late} stop ({self.stop.reason})"
            self.refusals.append(("stop", reason, self.stop.actor))
            self.stop = None
        if self.pending_pause is not None:
            late = "the run was stopped: nothing left to" if self._stop_applied else late
            reason = f"{late} pause ({self.pending_pause.reason})"
            self.refusals.append(("pause", reason, self.pending_pause.actor))
            self.pending_pause = None
        await self.record_refusals()

    async def record_refusals(self) -> None:
        while self.refusals:
            signal, reason, actor = self.refusals.pop(0)
            self._refusals_recorded += 1
            await self._local(
                ControlActivities.record_refusal,
                RefusalRequest(
                    run_id=self.state.run_id,
                    tenant_id=self.state.tenant_id,
                    key=str(self._refusals_recorded),
                    signal=signal,
                    actor_id=actor.id if actor else "unknown",
                    authority=actor.authority if actor else None,
                    reason=reason,
                ),
            )

    async def _local(self, method: Any, arg: Any) -> Any:
        return await self.writes.must(method, arg)
