"""GOVERNANCE_CHECK of RunWorkflow: the run's governance writes as a saga.

Policy evaluation (which commits the GOVERNANCE_CHECK phase with it), the incident the
outcome calls for, the trace completion, then the run's own reconciliation (read by the
trace completion in its transaction, or on its own when the run is untraced). Each
compensation is registered before its step; on any failure or cancellation they run in
reverse (workflows.saga), and the caller fails the run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from activities.incidents import IncidentActivities
    from activities.policies import PolicyActivities
    from activities.traces import TraceActivities
    from domain import contract
    from domain.enums import Phase, RunStatus
    from domain.messages import EvaluateRequest, RollbackRequest, TraceRequest
    from domain.outcome import Outcome, after_evaluation
    from workflows.errors import GovernanceFailure, is_cancellation, root_cause
    from workflows.run_state import RunState
    from workflows.run_writes import RunWrites
    from workflows.saga import Saga


@dataclass
class Governed:
    """What governance committed, or why it was rolled back."""

    outcome: Outcome
    policy_outcome: str | None = None
    incident_id: str | None = None
    rolled_back: str | None = None

    def events(self, traced: bool, steps_done: int) -> list[tuple[str, dict[str, Any]]]:
        """The governance events, written when the run finalizes (never before)."""
        events = [("policy.evaluated", {"outcome": self.policy_outcome})]
        if self.incident_id:
            events.append(("incident.created", {"incident_id": self.incident_id}))
        if traced:
            events.append(("trace.completed", {"steps": steps_done}))
        return events


async def govern(state: RunState, writes: RunWrites, outcome: Outcome) -> Governed:
    """Run the saga; re-raises a cancellation after compensating."""
    saga = Saga()
    result = Governed(outcome)

    def undo(method: Any) -> Any:
        async def compensate(reason: str) -> None:
            req = RollbackRequest(run_id=state.run_id, tenant_id=state.tenant_id, reason=reason)
            await writes.compensation(method, req)

        return compensate

    try:
        saga.register("policy evaluation", undo(PolicyActivities.rollback_evaluation))
        governing = writes.phase_change(Phase.GOVERNANCE_CHECK, RunStatus.RUNNING)
        request = EvaluateRequest(facts=state.facts(outcome), enter=governing)
        evaluation = await writes.saga(PolicyActivities.evaluate, request)
        writes.entered(governing)
        result.policy_outcome = evaluation.outcome
        result.outcome = after_evaluation(outcome, evaluation.outcome, state.over_budget)
        if result.outcome.incident is not None:
            reason = "run outcome calls for an incident"
            await writes.amend("incident", reason, [], [contract.CREATE_INCIDENT])
            saga.register("incident", undo(IncidentActivities.rollback))
            incident = await writes.create_incident(result.outcome, in_saga=True)
            result.incident_id = incident.incident_id
        check = None
        if state.traced:
            saga.register("trace completion", undo(TraceActivities.revert_completion))
            trace = TraceRequest(
                run_id=state.run_id,
                tenant_id=state.tenant_id,
                reconcile=state.fewer_local_activities,
            )
            completed = await writes.saga(TraceActivities.complete, trace)
            check = completed.reconciliation
        if check is None:  # an untraced run (or one from before workflows.patches)
            check = await writes.saga(AuditActivities.reconcile_run, state.run_id)
        if check.status != "COMPLETE":
            found = f"missing={check.missing} drift={check.drift}"
            raise GovernanceFailure(f"own reconciliation {check.status}: {found}")
    except BaseException as exc:
        cancelled = is_cancellation(exc)
        cause = "workflow cancelled" if cancelled else root_cause(exc)
        result.rolled_back = f"governance rolled back: {cause}"
        held = await saga.compensate(result.rolled_back)
        if cancelled or held:
            raise asyncio.CancelledError() from None
    return result
