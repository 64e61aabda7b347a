"""RunWorkflow: one governed LLM run, walking the phase machine of docs/DESIGN.md.

CREATED → AUTHORIZED → EXECUTING → GOVERNANCE_CHECK → FINALIZING → COMPLETED, or
FAILED from any phase. Every write is an idempotent activity; decisions are pure
functions from ``domain``; governance is a saga (workflows.saga).
"""

import asyncio
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.runs import RunActivities
    from activities.steps import StepActivities
    from activities.traces import TraceActivities
    from domain import contract, step_refs
    from domain.agent import AGENT
    from domain.continuation import RunContinuation
    from domain.enums import (
        AuthorizationDecision,
        IncidentCategory,
        ObservabilityMode,
        Phase,
        RunStatus,
        Severity,
        ViolationType,
    )
    from domain.ids import run_id_from_workflow_id
    from domain.messages import (
        DegradedRequest,
        FinalizeRequest,
        OpenRunRequest,
        OpenRunResult,
        StepPrevention,
        StepRequest,
        StepResult,
        TraceRequest,
    )
    from domain.models import SKILLS, RunInput, RunResult, RunStatusView, StepSpec
    from domain.outcome import RUN_FAILURE_TYPES, IncidentSpec, Outcome
    from domain.skill_catalog import BUILT_IN_CATALOG, SkillCatalog
    from workflows import continuation, patches, run_details
    from workflows.agent_loop import AgentLoop
    from workflows.control import RunControl
    from workflows.control_updates import ControlUpdates
    from workflows.errors import (
        describe_validation_error,
        is_cancellation,
        one_object,
        root_cause,
    )
    from workflows.options import STEP, STEP_DURABLE, TRACE_START
    from workflows.run_governance import govern
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites
    from workflows.saga import shielded


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    """A governed run. Signals: pause, resume, stop, approve. Updates (validated,
    answered): pause_run, resume_run, stop_run, approve_step. Query: status.

    ``run`` is the phase machine of docs/DESIGN.md, top-down; what the run knows is a
    ``RunState``, how it writes is ``RunWrites``, its control (signals, policy checks,
    pauses) is ``RunControl`` and its governance is ``govern`` — each typed against the
    state, none against this class.
    """

    @workflow.init
    def __init__(self, *args: Any) -> None:
        # Untyped on purpose: a payload that is not one JSON object must reach this check
        # (and fail the run as InvalidRunInput), not fail the workflow task while decoding.
        self._args, carried = continuation.split_args(args)
        self._input, self._input_error = parse_run_input(self._args, workflow.info().workflow_id)
        # Where the run before this one left it, when Temporal continued it as new.
        self._continued: RunContinuation | None = None
        if carried is not None and not self._input_error:
            self._continued, self._input_error = continuation.accept(carried)
        run_id = (
            self._input.run_id
            if self._input and self._input.run_id
            else run_id_from_workflow_id(workflow.info().workflow_id)
        )
        self.state = RunState.of(run_id, self._input)
        self.writes = RunWrites(self.state)
        self.control = RunControl(self.state, self.writes)
        self.updates = ControlUpdates(self.control)
        self.agent = AgentLoop(self.state, self.writes, self.control, self._prevented)
        self.writes.on_change = lambda: run_details.publish(self.control)
        if self._continued is not None:  # before any handler: they see the run as it is
            continuation.restore(self._continued, self.state, self.control, self.agent)

    # ----- operator surface -------------------------------------------------------

    @workflow.query(name="status")
    def status_query(self, *_args: Any) -> RunStatusView:
        s = self.state
        return RunStatusView(
            run_id=s.run_id,
            tenant_id=s.tenant_id,
            phase=s.phase,
            status=s.status,
            step_index=s.steps_done,
            steps_total=s.steps_total,
            cost=s.cost,
            budget=s.budget,
            pause=self.control.pause_view(),
            pause_requested=self.control.pending_pause is not None,
            stop_requested=self.control.stop_requested,
            failure_reason=s.failure_reason,
        )

    @workflow.signal(name="pause")
    def pause_signal(self, *args: Any) -> None:
        self.control.on_pause(*args)

    @workflow.signal(name="resume")
    def resume_signal(self, *args: Any) -> None:
        self.control.on_resume(*args)

    @workflow.signal(name="stop")
    def stop_signal(self, *args: Any) -> None:
        self.control.on_stop(*args)

    @workflow.signal(name="approve")
    def approve_signal(self, *args: Any) -> None:
        self.control.on_approve(*args)

    # Updates: a refusal is raised by the validator (no history event); an accepted one
    # returns the run's state once the run has acted on it (workflows.control_updates).

    @workflow.update(name="pause_run")
    def pause_update(self, *args: Any) -> RunStatusView:
        self.updates.pause(args)
        return self.status_query()

    @pause_update.validator
    def validate_pause(self, *args: Any) -> None:
        self.updates.validate_pause(args)

    @workflow.update(name="resume_run")
    async def resume_update(self, *args: Any) -> RunStatusView:
        await self.updates.resume(args)
        return self.status_query()

    @resume_update.validator
    def validate_resume(self, *args: Any) -> None:
        self.updates.validate_resume(args)

    @workflow.update(name="stop_run")
    def stop_update(self, *args: Any) -> RunStatusView:
        self.updates.stop(args)
        return self.status_query()

    @stop_update.validator
    def validate_stop(self, *args: Any) -> None:
        self.updates.validate_stop(args)

    @workflow.update(name="approve_step")
    async def approve_update(self, *args: Any) -> RunStatusView:
        await self.updates.approve(args)
        return self.status_query()

    @approve_update.validator
    def validate_approve(self, *args: Any) -> None:
        self.updates.validate_approve(args)

    # ----- the phase machine ------------------------------------------------------

    @workflow.run
    async def run(self, *args: Any) -> RunResult:
        if (self._input is not None and not self._input_error
                and not workflow.patched(patches.SKILLS_CHECKED_AT_OPEN)):  # fmt: skip
            # Started before the patch: its skills were checked here, the built-in ones.
            wid = workflow.info().workflow_id
            _, self._input_error = parse_run_input(self._args, wid, BUILT_IN_CATALOG)
        if self._input is None or self._input_error:
            raise ApplicationError(
                f"invalid RunWorkflow input: {self._input_error}",
                type="InvalidRunInput",
                non_retryable=True,
            )
        try:
            result = await self._lifecycle(self._input)
        except BaseException as exc:  # a cancellation may surface as a cancelled activity
            if not is_cancellation(exc):
                raise
            await self._finish_cancelled()
            raise asyncio.CancelledError() from None
        if result.phase == Phase.FAILED and self.state.failed_runs_fail:
            raise run_failure(result)  # the workflow ends as failed, the result in details
        return result

    async def _lifecycle(self, inp: RunInput) -> RunResult:
        if self._continued is None:
            ended = await self._authorize_and_start(inp)
            if ended is not None:
                return ended
        else:  # continued as new between two steps: EXECUTING, where the last run left it
            self.writes.changed()

        # EXECUTING: the steps, with control at every step boundary
        outcome = await self._execute(inp)
        self.state.execution_over = True
        if self.state.late_control_refused:
            await self.control.after_execution()

        # GOVERNANCE_CHECK (a saga) → FINALIZING → COMPLETED / FAILED
        return await self._govern_and_finalize(outcome)

    async def _authorize_and_start(self, inp: RunInput) -> RunResult | None:
        """CREATED → AUTHORIZED → EXECUTING; the RunResult of a run that ended on the way."""
        # CREATED → AUTHORIZED (or FAILED: denied)
        opened = await self._open(inp)
        self.writes.mirror_tenant()
        auth = opened.authorization
        if auth.decision == AuthorizationDecision.DENIED:
            spec = IncidentSpec(
                IncidentCategory.AUTHORIZATION_DENIED, Severity.MEDIUM, "Run not authorized"
            )
            return await self._fail_early(RunStatus.FAILED_POLICY, auth.reason, spec)
        if self.state.budget is None:
            self.state.budget = auth.budget_limit
        self.control.start(opened.started_at, auth, checked=opened.first_check_recorded)

        # AUTHORIZED → EXECUTING (with the trace, or without it unless STRICT)
        started = [("run.started", {"steps": len(inp.steps)})]
        trace_error = await self._start_trace(started)
        if trace_error is not None:
            if self.state.config.observability_mode == ObservabilityMode.STRICT:
                spec = IncidentSpec(
                    IncidentCategory.RUN_FAILURE, Severity.HIGH, "Trace unavailable"
                )
                reason = f"trace start failed (OBSERVABILITY_MODE=STRICT): {trace_error}"
                return await self._fail_early(RunStatus.FAILED, reason, spec)
            await self.writes.transition(Phase.EXECUTING, RunStatus.RUNNING, events=started)
        return None

    # ----- CREATED → AUTHORIZED ----------------------------------------------------

    async def _open(self, inp: RunInput) -> OpenRunResult:
        """Run row, contract and authorization in one write (once: a repeat returns the
        first result); an allowed run is AUTHORIZED when it returns."""
        s = self.state
        authorized = self.writes.phase_change(Phase.AUTHORIZED, RunStatus.QUEUED)
        s.fewer_local_activities = workflow.patched(patches.FEWER_LOCAL_ACTIVITIES)
        s.refuse_late_resumes = workflow.patched(patches.REFUSE_LATE_RESUMES)
        s.failed_runs_fail = workflow.patched(patches.FAILED_RUNS_FAIL)
        s.every_failure_published = workflow.patched(patches.EVERY_FAILURE_PUBLISHED)
        s.durable_writes = workflow.patched(patches.DURABLE_WRITES)
        s.late_control_refused = workflow.patched(patches.LATE_CONTROL_REFUSED)
        s.run_timeout_enforced = workflow.patched(patches.RUN_TIMEOUT_ENFORCED)
        s.continue_as_new_when_suggested = workflow.patched(patches.CONTINUE_AS_NEW_WHEN_SUGGESTED)
        opened = await self.writes.must(
            RunActivities.open,
            OpenRunRequest(
                run_id=s.run_id,
                tenant_id=s.tenant_id,
                steps=inp.steps,
                budget=inp.budget,
                options=inp.options,
                submitted_by=inp.submitted_by,
                authorized=authorized,
                first_check=s.fewer_local_activities,
            ),
        )
        s.config_ = opened.config
        self.agent.offer(opened.agent_tools)
        if opened.authorization.decision == AuthorizationDecision.ALLOWED:
            self.writes.entered(authorized)
        return opened

    # ----- AUTHORIZED → EXECUTING --------------------------------------------------

    async def _start_trace(self, started: list[tuple[str, dict[str, Any]]]) -> str | None:
        """The observability guard: a started trace enters EXECUTING in the same write;
        returns the error of a failed trace start, if any."""
        s = self.state
        executing = self.writes.phase_change(
            Phase.EXECUTING, RunStatus.RUNNING, events=[*started, ("trace.started", {})]
        )
        req = TraceRequest(run_id=s.run_id, tenant_id=s.tenant_id, enter=executing)
        try:
            await self.writes.guarded(TraceActivities.start, req, TRACE_START)
            s.traced = True
            self.writes.entered(executing)
            return None
        except (ActivityError, ApplicationError) as exc:  # a local activity raises the cause
            error = root_cause(exc)
        mode = s.config.observability_mode
        workflow.logger.warning("trace start failed (%s): %s", mode, error)
        if mode == ObservabilityMode.STRICT:
            return error
        withdraw = [contract.START_TRACE, contract.COMPLETE_TRACE]
        withdraw += [contract.record_step(i) for i in range(s.steps_total)]
        await self.writes.amend(
            f"untraced-{mode}", f"trace unavailable ({mode}): {error}", withdraw
        )
        if mode == ObservabilityMode.DEGRADED:
            degraded = DegradedRequest(run_id=s.run_id, tenant_id=s.tenant_id, error=error)
            await self.writes.must(RunActivities.mark_degraded, degraded)
        return error

    # ----- EXECUTING -----------------------------------------------------------------

    async def _execute(self, inp: RunInput) -> Outcome:
        s = self.state
        wanted = step_refs.referenced_ids([step.input for step in inp.steps])
        carried = self._continued
        first = carried.next_index if carried else 0  # this run's first step
        for index, step in enumerate(inp.steps):
            if index < first:
                continue
            if index > first:  # its history grew large: on in a new run, from this step
                self._continue_if_due(index)
            if step.skill == AGENT:  # driven here, each call a step (workflows.agent_loop)
                later = len(inp.steps) - index - 1
                ended = await self.agent.run(index, step, later, step.id in wanted)
                if ended is not None:
                    return ended
                continue
            at = s.steps_done  # its index in the trace: ``index`` but after an agent step

            async def attempt(approved: str | None, index: int = index, step: StepSpec = step,
                              at: int = at) -> StepResult:  # fmt: skip
                # the earlier outputs it references, from the recorded results (after the
                # checkpoint: a RefError ends the run there)
                data = step_refs.resolve(step.input, s.outputs, f"steps.{index}.input")
                return await self._step(at, step, data, approved)

            def could_not_run(cause: str, index: int = index, step: StepSpec = step) -> Outcome:
                reason = f"step {index} ({step.skill}) could not run: {cause}"
                return Outcome(RunStatus.FAILED, reason, self._failure_incident())

            try:
                result = await self.control.admitted_step(
                    at, attempt, could_not_run,
                    waiting=lambda index=index: self._continue_if_due(index),
                )  # fmt: skip
            except step_refs.RefError as exc:
                reason = f"step {index} ({step.skill}) not run: {exc}"
                return Outcome(RunStatus.FAILED, reason, self._failure_incident())
            if isinstance(result, Outcome):
                return result
            if result.prevented is not None:  # judged before it ran: it did not run
                return self._prevented(result.prevented)
            s.steps_done = at + 1
            s.cost += result.cost
            self.writes.changed()
            s.skills_used.append(step.skill)
            if step.id in wanted and result.ok:
                s.outputs[step.id] = result.output
            if result.hash:
                s.prev_hash = result.hash
            if not result.ok:
                reason = f"step {index} ({step.skill}) failed: {result.error}"
                return Outcome(RunStatus.FAILED, reason, self._failure_incident())
            self.control.after_step(s.cost)
        return Outcome(RunStatus.SUCCEEDED)

    def _continue_if_due(self, index: int) -> None:
        """Continue as new before planned step ``index`` when Temporal suggests it and
        nothing is in flight (workflows.continuation); never returns then."""
        if continuation.due(self.state, self.control):
            segment = self._continued.segment if self._continued else 0
            continuation.continue_as_new(self._args[0], self.state, self.control, self.agent,
                                         index, segment)  # fmt: skip

    async def _step(self, index: int, step: StepSpec, data: dict[str, Any],
                    approved: str | None = None) -> StepResult:  # fmt: skip
        """One step activity. It returns ``waiting_for_slot`` (nothing ran) when the tenant is
        at its steps-in-flight limit; such a result cannot appear in a history recorded
        before the limit existed, so those histories replay unchanged."""
        s = self.state
        return await workflow.execute_activity_method(
            StepActivities.execute,
            StepRequest(
                run_id=s.run_id,
                tenant_id=s.tenant_id,
                index=index,
                skill=step.skill,
                input=data,  # its references resolved
                traced=s.traced,
                prev_hash=s.prev_hash,
                cost_so_far=s.cost,
                budget=s.budget,
                approved_digest=approved,
            ),
            summary=f"step {index + 1}/{s.steps_total} {step.skill}",  # shown in the Web UI
            **(STEP_DURABLE if s.durable_writes else STEP),
        )

    @staticmethod
    def _prevented(prevention: StepPrevention) -> Outcome:
        """A rule (BLOCKED, PREVENTED) or the budget stopped a step before it ran."""
        if prevention.by_budget:
            spec = IncidentSpec(IncidentCategory.BUDGET_BREACH, Severity.HIGH, "Budget exceeded")
            violation = ViolationType.BUDGET_EXCEEDED
            reason = f"prevented by the budget: {prevention.reason}"
        else:
            spec = IncidentSpec(IncidentCategory.POLICY_VIOLATION, Severity.HIGH,
                                f"Step prevented by rule {prevention.rule_name}")  # fmt: skip
            violation = ViolationType.STEP_PREVENTED
            reason = (f"prevented by rule {prevention.rule_name!r} ({prevention.outcome}): "
                      f"{prevention.reason}")  # fmt: skip
        return Outcome(RunStatus.FAILED_POLICY, reason, spec, [violation])

    @staticmethod
    def _failure_incident() -> IncidentSpec:
        return IncidentSpec(IncidentCategory.RUN_FAILURE, Severity.HIGH, "Run failed")

    # ----- GOVERNANCE_CHECK → FINALIZING → COMPLETED / FAILED -------------------------

    async def _govern_and_finalize(self, outcome: Outcome) -> RunResult:
        """GOVERNANCE_CHECK as a saga (workflows.run_governance: its first write enters the
        phase), then FINALIZING (entered by the finalizing write)."""
        s = self.state
        unexecuted = [contract.record_step(i) for i in range(s.steps_done, s.steps_total)]
        if unexecuted and s.traced:
            await self.writes.amend(
                "unexecuted-steps", f"not executed: {outcome.reason}", unexecuted
            )
        governed = await govern(s, self.writes, outcome)
        if governed.rolled_back:
            return await self._fail_after_rollback(governed.rolled_back)
        events = governed.events(s.traced, s.steps_done)
        return await self._finalize(
            governed.outcome,
            events,
            governed.incident_id,
            governed.policy_outcome,
            via_finalizing=True,
        )

    async def _fail_early(self, status: RunStatus, reason: str, spec: IncidentSpec) -> RunResult:
        """Denied or untraceable (STRICT) run: incident, then FAILED; nothing else was done."""
        await self.writes.amend(
            "fail-early", reason, [], [contract.CREATE_INCIDENT], withdraw_all=True
        )
        outcome = Outcome(status, reason, spec)
        incident = await self.writes.create_incident(outcome)
        events = [("incident.created", {"incident_id": incident.incident_id})]
        return await self._finalize(outcome, events, incident.incident_id, None)

    async def _fail_after_rollback(self, reason: str) -> RunResult:
        if self.state.phase != Phase.GOVERNANCE_CHECK:  # failed before its first write
            await self.writes.transition(Phase.GOVERNANCE_CHECK, RunStatus.RUNNING)
        await self.writes.amend("rolled-back", reason, [], [], withdraw_all=True)
        outcome = Outcome(RunStatus.FAILED, reason)
        result = await self._finalize(outcome, [], None, None, cause=GOVERNANCE_ROLLBACK)
        return result.model_copy(update={"rolled_back": True})

    async def _finish_cancelled(self) -> None:
        """Cancelled from outside: close the contract and fail the run, shielded."""
        if self.state.ended:
            return
        reason = "workflow cancelled"

        async def close() -> None:
            if self.state.config_ is None:  # cancelled before the run row was known to exist
                await self._open(self._input)
            await self.writes.amend("cancelled", reason, [], [], withdraw_all=True)
            outcome = Outcome(RunStatus.CANCELLED, reason)
            await self._finalize(outcome, [], None, None, cause=CANCELLED)

        await shielded(close)

    async def _finalize(
        self,
        outcome: Outcome,
        events: list[tuple[str, dict[str, Any]]],
        incident_id: str | None,
        policy_outcome: str | None,
        via_finalizing: bool = False,
        cause: str | None = None,
    ) -> RunResult:
        """The terminal transition (through FINALIZING, committed in the same write, when
        ``via_finalizing``), the finalize_run ack and the run's events: ``run.completed``,
        or ``run.failed`` with its cause (patch ``every-failure-published``: every failed
        run; before it, only one with an incident or other events)."""
        s = self.state
        target = Phase.COMPLETED if outcome.succeeded else Phase.FAILED
        topic = "run.completed" if outcome.succeeded else "run.failed"
        if s.every_failure_published:
            payload: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason}
            if not outcome.succeeded:
                payload["cause"] = cause or failure_cause(outcome)
            events = [*events, (topic, payload)]
        elif events or outcome.succeeded or incident_id:
            events = [*events, (topic, {"status": outcome.status, "reason": outcome.reason})]
        s.failure_reason = outcome.reason
        enter = (
            self.writes.phase_change(Phase.FINALIZING, RunStatus.RUNNING)
            if via_finalizing
            else None
        )
        final = self.writes.phase_change(target, outcome.status, after=enter)
        committed = await self.writes.must(
            RunActivities.finalize,
            FinalizeRequest(
                run_id=s.run_id,
                tenant_id=s.tenant_id,
                seq=final.seq,
                from_phase=final.from_phase,
                to_phase=final.to_phase,
                status=final.status,
                reason=s.failure_reason,
                steps_done=s.steps_done,
                cost=s.cost,
                events=events,
                enter=enter,
            ),
        )
        # Finalization happens once; if it already committed, mirror that commit.
        s.failure_reason = committed.reason
        self.writes.entered(
            final.model_copy(update={"to_phase": committed.phase, "status": committed.status})
        )
        return RunResult(
            run_id=s.run_id,
            phase=s.phase,
            status=s.status,
            reason=s.failure_reason,
            steps_done=s.steps_done,
            cost=s.cost,
            incident_id=incident_id,
            policy_outcome=policy_outcome,
        )


GOVERNANCE_ROLLBACK = "GOVERNANCE_ROLLBACK"  # the cause of run.failed after a rollback
CANCELLED = "CANCELLED"  # ... and after a cancellation


def failure_cause(outcome: Outcome) -> str:
    """The cause ``run.failed`` names: the category of the run's incident, else its status."""
    return outcome.incident.category if outcome.incident else str(outcome.status).upper()


def run_failure(result: RunResult) -> ApplicationError:
    """The failure a FAILED run's workflow ends with (domain.outcome.RUN_FAILURE_TYPES)."""
    return ApplicationError(
        f"run {result.run_id} ended {result.phase} {result.status}: {result.reason}",
        result.model_dump(mode="json"),
        type=RUN_FAILURE_TYPES[result.status],
        non_retryable=True,
    )


def parse_run_input(
    args: tuple[Any, ...], workflow_id: str, skills: SkillCatalog | None = None
) -> tuple[RunInput | None, str | None]:
    """The run's input as a RunInput, or why it is not one (validated once, here: the
    client and the API validated it already at their own edge). Its steps' skills are
    checked against ``skills`` only (none: runs.open checks them against the worker's
    catalog, so that a replay does not depend on which plugins a worker has)."""
    raw, problem = one_object(args)
    if raw is None:
        return None, problem
    try:
        inp = RunInput.model_validate(raw, context={SKILLS: skills})
    except ValidationError as exc:
        return None, describe_validation_error(exc)
    expected = run_id_from_workflow_id(workflow_id)
    if inp.run_id is not None and inp.run_id != expected:
        return inp, (
            f"run_id: {inp.run_id!r} does not match the workflow id {workflow_id!r} "
            f"(expected run-{inp.run_id})"
        )
    return inp, None
