"""RunWorkflow: one governed LLM run, walking the phase machine of DESIGN.md.

CREATED → AUTHORIZED → EXECUTING → GOVERNANCE_CHECK → FINALIZING → COMPLETED, or
FAILED from any phase. Every write is an idempotent activity; decisions are pure
functions from ``domain``; governance is a saga (workflows.saga).
"""

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from activities.incidents import IncidentActivities
    from activities.runs import RunActivities
    from activities.steps import StepActivities
    from activities.traces import TraceActivities
    from domain import contract, search_attributes
    from domain.enums import (
        AuthorizationDecision,
        IncidentCategory,
        ObservabilityMode,
        Phase,
        RunStatus,
        Severity,
    )
    from domain.hashchain import GENESIS_HASH
    from domain.ids import run_id_from_workflow_id
    from domain.messages import (
        AmendContractRequest,
        DegradedRequest,
        FinalizeRequest,
        IncidentRequest,
        IncidentResult,
        OpenRunRequest,
        OpenRunResult,
        StepRequest,
        StepResult,
        TraceRequest,
        TransitionRequest,
    )
    from domain.models import RunConfig, RunInput, RunResult, RunStatusView, StepSpec
    from domain.outcome import IncidentSpec, Outcome
    from domain.phases import PhaseInvariantError, check_transition
    from workflows import patches
    from workflows.control import RunControl
    from workflows.errors import (
        describe_validation_error,
        is_cancellation,
        one_object,
        root_cause,
    )
    from workflows.options import MUST_WRITE, STEP, TRACE_START
    from workflows.run_governance import govern
    from workflows.saga import shielded


@workflow.defn(name="RunWorkflow")
class RunWorkflow:
    """A governed run. Signals: pause, resume, stop. Query: status."""

    @workflow.init
    def __init__(self, *args: Any) -> None:
        # Untyped on purpose: a payload that is not one JSON object must reach this check
        # (and fail the run as InvalidRunInput), not fail the workflow task while decoding.
        self._input: RunInput | None = None
        raw, self._input_error = one_object(args)
        if raw is not None:
            try:
                self._input = RunInput.model_validate(raw)
            except ValidationError as exc:
                self._input_error = describe_validation_error(exc)
        wf_run_id = run_id_from_workflow_id(workflow.info().workflow_id)
        given = self._input.run_id if self._input else None
        if given is not None and given != wf_run_id:
            self._input_error = (
                f"run_id: {given!r} does not match the workflow id "
                f"{workflow.info().workflow_id!r} (expected run-{given})"
            )
        self.run_id = given or wf_run_id
        self.tenant_id = self._input.tenant_id if self._input else ""
        self.phase = Phase.CREATED
        self.status = RunStatus.QUEUED
        self._seq = 0
        self.steps_done = 0
        self.cost = Decimal(0)
        self.budget: Decimal | None = self._input.budget if self._input else None
        self._prev_hash = GENESIS_HASH
        self.traced = False
        self.execution_over = False
        self.fewer_local_activities = False  # workflows.patches, decided when the run opens
        self.skills_used: list[str] = []
        self._config: RunConfig | None = None
        self._failure_reason: str | None = None
        self.control = RunControl(self)

    # ----- operator surface -------------------------------------------------------

    @workflow.query(name="status")
    def status_query(self, *_args: Any) -> RunStatusView:
        return RunStatusView(
            run_id=self.run_id,
            tenant_id=self.tenant_id,
            phase=self.phase,
            status=self.status,
            step_index=self.steps_done,
            steps_total=len(self._input.steps) if self._input else 0,
            cost=self.cost,
            budget=self.budget,
            pause=self.control.pause_view(),
            stop_requested=self.control.stop_requested,
            failure_reason=self._failure_reason,
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

    # ----- lifecycle ---------------------------------------------------------------

    @workflow.run
    async def run(self, *_args: Any) -> RunResult:
        if self._input is None or self._input_error:
            raise ApplicationError(
                f"invalid RunWorkflow input: {self._input_error}",
                type="InvalidRunInput",
                non_retryable=True,
            )
        inp = self._input
        try:
            return await self._lifecycle(inp)
        except BaseException as exc:  # a cancellation may surface as a cancelled activity
            if not is_cancellation(exc):
                raise
            await self._finish_cancelled()
            raise asyncio.CancelledError() from None

    async def _open(self, inp: RunInput) -> OpenRunResult:
        """Run row, contract and authorization in one write (once: a repeat returns the
        first result); an allowed run is AUTHORIZED when it returns."""
        authorized = self.phase_change(Phase.AUTHORIZED, RunStatus.QUEUED)
        self.fewer_local_activities = workflow.patched(patches.FEWER_LOCAL_ACTIVITIES)
        opened = await self.local(
            RunActivities.open,
            OpenRunRequest(
                run_id=self.run_id,
                tenant_id=self.tenant_id,
                steps=inp.steps,
                budget=inp.budget,
                options=inp.options,
                authorized=authorized,
                first_check=self.fewer_local_activities,
            ),
            MUST_WRITE,
        )
        self._config = opened.config
        if opened.authorization.decision == AuthorizationDecision.ALLOWED:
            self.entered(authorized)
        return opened

    async def _lifecycle(self, inp: RunInput) -> RunResult:
        opened = await self._open(inp)
        self._mirror_tenant()
        auth = opened.authorization
        if auth.decision == AuthorizationDecision.DENIED:
            spec = IncidentSpec(
                IncidentCategory.AUTHORIZATION_DENIED, Severity.MEDIUM, "Run not authorized"
            )
            return await self._fail_early(RunStatus.FAILED_POLICY, auth.reason, spec)
        if self.budget is None:
            self.budget = auth.budget_limit
        self.control.start(opened.started_at, auth, checked=opened.first_check_recorded)

        started = [("run.started", {"steps": len(inp.steps)})]
        trace_error = await self._start_trace(started)
        if trace_error is not None:
            if self.config.observability_mode == ObservabilityMode.STRICT:
                spec = IncidentSpec(
                    IncidentCategory.RUN_FAILURE, Severity.HIGH, "Trace unavailable"
                )
                reason = f"trace start failed (OBSERVABILITY_MODE=STRICT): {trace_error}"
                return await self._fail_early(RunStatus.FAILED, reason, spec)
            await self.transition(Phase.EXECUTING, RunStatus.RUNNING, events=started)

        outcome = await self._execute(inp)
        self.execution_over = True
        return await self._govern_and_finalize(outcome)

    async def _start_trace(self, started: list[tuple[str, dict[str, Any]]]) -> str | None:
        """The observability guard: a started trace enters EXECUTING in the same write;
        returns the error of a failed trace start, if any."""
        executing = self.phase_change(
            Phase.EXECUTING, RunStatus.RUNNING, events=[*started, ("trace.started", {})]
        )
        req = TraceRequest(run_id=self.run_id, tenant_id=self.tenant_id, enter=executing)
        try:
            await self.local(TraceActivities.start, req, TRACE_START)
            self.traced = True
            self.entered(executing)
            return None
        except (ActivityError, ApplicationError) as exc:  # a local activity raises the cause
            error = root_cause(exc)
        mode = self.config.observability_mode
        workflow.logger.warning("trace start failed (%s): %s", mode, error)
        if mode == ObservabilityMode.STRICT:
            return error
        withdraw = [contract.START_TRACE, contract.COMPLETE_TRACE]
        withdraw += [contract.record_step(i) for i in range(len(self._input.steps))]
        await self.amend(f"untraced-{mode}", f"trace unavailable ({mode}): {error}", withdraw)
        if mode == ObservabilityMode.DEGRADED:
            degraded = DegradedRequest(run_id=self.run_id, tenant_id=self.tenant_id, error=error)
            await self.local(RunActivities.mark_degraded, degraded, MUST_WRITE)
        return error

    async def _execute(self, inp: RunInput) -> Outcome:
        for index, step in enumerate(inp.steps):
            waits = 0
            while True:  # again while the tenant has no free steps-in-flight slot
                stopped = await self.control.checkpoint(index)
                if stopped is not None:
                    return stopped
                try:
                    result = await self._step(index, step)
                except ActivityError as exc:
                    if is_cancellation(exc):
                        raise asyncio.CancelledError() from None
                    reason = f"step {index} ({step.skill}) could not run: {root_cause(exc)}"
                    return Outcome(RunStatus.FAILED, reason, self._failure_incident())
                if not result.waiting_for_slot:
                    break
                waits += 1
                await self.control.wait_for_slot(waits)
            self.steps_done = index + 1
            self.cost += result.cost
            self.skills_used.append(step.skill)
            if result.hash:
                self._prev_hash = result.hash
            if not result.ok:
                reason = f"step {index} ({step.skill}) failed: {result.error}"
                return Outcome(RunStatus.FAILED, reason, self._failure_incident())
            self.control.after_step(self.cost)
        return Outcome(RunStatus.SUCCEEDED)

    async def _step(self, index: int, step: StepSpec) -> StepResult:
        """One step activity. It returns ``waiting_for_slot`` (nothing ran) when the tenant is
        at its steps-in-flight limit; such a result cannot appear in a history recorded
        before the limit existed, so those histories replay unchanged."""
        return await workflow.execute_activity_method(
            StepActivities.execute,
            StepRequest(
                run_id=self.run_id,
                tenant_id=self.tenant_id,
                index=index,
                skill=step.skill,
                input=step.input,
                traced=self.traced,
                prev_hash=self._prev_hash,
            ),
            **STEP,
        )

    @staticmethod
    def _failure_incident() -> IncidentSpec:
        return IncidentSpec(IncidentCategory.RUN_FAILURE, Severity.HIGH, "Run failed")

    async def _govern_and_finalize(self, outcome: Outcome) -> RunResult:
        """GOVERNANCE_CHECK as a saga (workflows.run_governance: its first write enters the
        phase), then FINALIZING (entered by the finalizing write)."""
        unexecuted = [contract.record_step(i) for i in range(self.steps_done, self.steps_total)]
        if unexecuted and self.traced:
            await self.amend("unexecuted-steps", f"not executed: {outcome.reason}", unexecuted)
        governed = await govern(self, outcome)
        if governed.rolled_back:
            return await self._fail_after_rollback(governed.rolled_back)
        events = governed.events(self.traced, self.steps_done)
        return await self._finalize(
            governed.outcome,
            events,
            governed.incident_id,
            governed.policy_outcome,
            via_finalizing=True,
        )

    async def create_incident(self, outcome: Outcome, options: dict[str, Any]) -> IncidentResult:
        """The incident ``outcome.incident`` describes, linked to this run."""
        spec = outcome.incident
        assert spec is not None
        return await self.local(
            IncidentActivities.create_for_run,
            IncidentRequest(
                run_id=self.run_id,
                tenant_id=self.tenant_id,
                category=spec.category,
                severity=spec.severity,
                title=f"{spec.title}: run {self.run_id}",
                description=outcome.reason or spec.title,
            ),
            options,
        )

    async def _fail_early(self, status: RunStatus, reason: str, spec: IncidentSpec) -> RunResult:
        """Denied or untraceable (STRICT) run: incident, then FAILED; nothing else was done."""
        await self.amend("fail-early", reason, [], [contract.CREATE_INCIDENT], withdraw_all=True)
        outcome = Outcome(status, reason, spec)
        incident = await self.create_incident(outcome, MUST_WRITE)
        events = [("incident.created", {"incident_id": incident.incident_id})]
        return await self._finalize(outcome, events, incident.incident_id, None)

    async def _fail_after_rollback(self, reason: str) -> RunResult:
        if self.phase != Phase.GOVERNANCE_CHECK:  # governance failed before its first write
            await self.transition(Phase.GOVERNANCE_CHECK, RunStatus.RUNNING)
        await self.amend("rolled-back", reason, [], [], withdraw_all=True)
        result = await self._finalize(Outcome(RunStatus.FAILED, reason), [], None, None)
        return result.model_copy(update={"rolled_back": True})

    async def _finish_cancelled(self) -> None:
        """Cancelled from outside: close the contract and fail the run, shielded."""
        if self.phase in (Phase.COMPLETED, Phase.FAILED):
            return
        reason = "workflow cancelled"

        async def close() -> None:
            if self._config is None:  # cancelled before the run row was known to exist
                await self._open(self._input)
            await self.amend("cancelled", reason, [], [], withdraw_all=True)
            await self._finalize(Outcome(RunStatus.CANCELLED, reason), [], None, None)

        await shielded(close)

    async def _finalize(
        self,
        outcome: Outcome,
        events: list[tuple[str, dict[str, Any]]],
        incident_id: str | None,
        policy_outcome: str | None,
        via_finalizing: bool = False,
    ) -> RunResult:
        """The terminal transition (through FINALIZING, committed in the same write, when
        ``via_finalizing``), the finalize_run ack and the run's events."""
        target = Phase.COMPLETED if outcome.succeeded else Phase.FAILED
        topic = "run.completed" if outcome.succeeded else "run.failed"
        if events or outcome.succeeded or incident_id:
            events = [*events, (topic, {"status": outcome.status, "reason": outcome.reason})]
        self._failure_reason = outcome.reason
        enter = self.phase_change(Phase.FINALIZING, RunStatus.RUNNING) if via_finalizing else None
        final = self.phase_change(target, outcome.status, after=enter)
        committed = await self.local(
            RunActivities.finalize,
            FinalizeRequest(
                run_id=self.run_id,
                tenant_id=self.tenant_id,
                seq=final.seq,
                from_phase=final.from_phase,
                to_phase=final.to_phase,
                status=final.status,
                reason=self._failure_reason,
                steps_done=self.steps_done,
                cost=self.cost,
                events=events,
                enter=enter,
            ),
            MUST_WRITE,
        )
        # Finalization happens once; if it already committed, mirror that commit.
        self._failure_reason = committed.reason
        self.entered(
            final.model_copy(update={"to_phase": committed.phase, "status": committed.status})
        )
        return RunResult(
            run_id=self.run_id,
            phase=self.phase,
            status=self.status,
            reason=self._failure_reason,
            steps_done=self.steps_done,
            cost=self.cost,
            incident_id=incident_id,
            policy_outcome=policy_outcome,
        )

    # ----- helpers -----------------------------------------------------------------

    @property
    def config(self) -> RunConfig:
        assert self._config is not None
        return self._config

    @property
    def steps_total(self) -> int:
        return len(self._input.steps) if self._input else 0

    async def local(self, method: Callable[..., Any], arg: Any, options: dict[str, Any]) -> Any:
        return await workflow.execute_local_activity_method(method, arg, **options)

    async def amend(
        self,
        key: str,
        reason: str,
        withdraw: list[tuple[str, str]],
        declare: list[tuple[str, str]] | None = None,
        withdraw_all: bool = False,
    ) -> None:
        req = AmendContractRequest(
            run_id=self.run_id,
            tenant_id=self.tenant_id,
            key=key,
            withdraw=withdraw,
            declare=declare or [],
            withdraw_all_open=withdraw_all,
            reason=reason,
        )
        await self.local(AuditActivities.amend_contract, req, MUST_WRITE)

    def phase_change(
        self,
        to: Phase,
        status: RunStatus,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        after: TransitionRequest | None = None,
    ) -> TransitionRequest:
        """The next phase change (from the current phase, or from ``after`` when it is
        committed in the same write), its phase→status invariant asserted."""
        from_phase, seq = (self.phase, self._seq) if after is None else (after.to_phase, after.seq)
        try:
            check_transition(from_phase, to, status)
        except PhaseInvariantError as exc:
            raise ApplicationError(
                str(exc), type="PhaseInvariantError", non_retryable=True
            ) from exc
        return TransitionRequest(
            run_id=self.run_id,
            seq=seq + 1,
            from_phase=from_phase,
            to_phase=to,
            status=status,
            steps_done=self.steps_done,
            cost=self.cost,
            events=events or [],
        )

    def entered(self, change: TransitionRequest) -> None:
        """A committed phase change: adopt it; mirror it where operators filter on it."""
        self._seq = change.seq
        self.phase, self.status = change.to_phase, change.status
        if change.to_phase in search_attributes.MIRRORED_PHASES:
            self.upsert_status()

    async def transition(
        self,
        to: Phase,
        status: RunStatus,
        events: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """A phase change with no write of its own to ride on."""
        change = self.phase_change(to, status, events)
        await self.local(RunActivities.transition, change, MUST_WRITE)
        self.entered(change)

    def _mirror_tenant(self) -> None:
        """TenantId and the phase, unless the starter already set them (runs_client)."""
        if not self.config.search_attributes:
            return
        if (
            workflow.info().typed_search_attributes.get(search_attributes.TENANT_ID)
            == self.tenant_id
        ):
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.TENANT_ID.value_set(self.tenant_id),
                search_attributes.RUN_PHASE.value_set(self.phase),
                search_attributes.RUN_STATUS.value_set(self.status),
            ]
        )

    def upsert_status(self) -> None:
        if self._config is None or not self._config.search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.RUN_PHASE.value_set(self.phase),
                search_attributes.RUN_STATUS.value_set(self.status),
            ]
        )
