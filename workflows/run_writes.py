"""How a run writes: its phase changes, contract amendments, incidents and the search
attributes that mirror its phase, on top of ``RunState``.

Deterministic workflow code: every write is a (local) activity; the phase→status invariant
is asserted before a phase change is sent anywhere.
"""

from collections.abc import Callable
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from activities.incidents import IncidentActivities
    from activities.runs import RunActivities
    from domain import search_attributes
    from domain.enums import Phase, RunStatus
    from domain.messages import (
        AmendContractRequest,
        IncidentRequest,
        IncidentResult,
        TransitionRequest,
    )
    from domain.outcome import Outcome
    from domain.phases import check_transition
    from workflows import durable_writes
    from workflows.run_state import RunState

Events = list[tuple[str, dict[str, Any]]]


class RunWrites:
    """The writes of one run, keeping ``state`` in step with what committed."""

    on_change: Callable[[], None] | None = None  # the run's UI details (workflows.run_details)

    def __init__(self, state: RunState) -> None:
        self.state = state

    async def must(self, method: Callable[..., Any], arg: Any) -> Any:
        """A write the run cannot end without (workflows.durable_writes)."""
        return await durable_writes.must(method, arg, self.state.durable_writes)

    async def saga(self, method: Callable[..., Any], arg: Any) -> Any:
        """A governance write: it fails (to be compensated), or waits out an outage."""
        return await durable_writes.saga(method, arg, self.state.durable_writes)

    async def guarded(self, method: Callable[..., Any], arg: Any, options: dict[str, Any]) -> Any:
        """A write whose failure the caller decides on, except an outage: waited out."""
        return await durable_writes.guarded(method, arg, options, self.state.durable_writes)

    async def compensation(self, method: Callable[..., Any], arg: Any) -> Any:
        return await durable_writes.compensation(method, arg, self.state.durable_writes)

    def phase_change(
        self,
        to: Phase,
        status: RunStatus,
        events: Events | None = None,
        after: TransitionRequest | None = None,
    ) -> TransitionRequest:
        """The next phase change (from the current phase, or from ``after`` when it is
        committed in the same write), its phase→status invariant asserted: a
        PhaseInvariantError is a bug, and fails the workflow *task* (not the run), which
        Temporal retries without history events until a fixed worker takes it."""
        s = self.state
        from_phase, seq = (s.phase, s.seq) if after is None else (after.to_phase, after.seq)
        check_transition(from_phase, to, status)
        return TransitionRequest(
            run_id=s.run_id,
            seq=seq + 1,
            from_phase=from_phase,
            to_phase=to,
            status=status,
            steps_done=s.steps_done,
            cost=s.cost,
            events=events or [],
        )

    def entered(self, change: TransitionRequest) -> None:
        """A committed phase change: adopt it; mirror it where operators filter on it."""
        self.state.seq = change.seq
        self.state.phase, self.state.status = change.to_phase, change.status
        if change.to_phase in search_attributes.MIRRORED_PHASES:
            self.upsert_status()
        self.changed()

    async def transition(self, to: Phase, status: RunStatus, events: Events | None = None) -> None:
        """A phase change with no write of its own to ride on."""
        change = self.phase_change(to, status, events)
        await self.must(RunActivities.transition, change)
        self.entered(change)

    def set_status(self, status: RunStatus) -> None:
        """A status change within the phase (paused ↔ running), mirrored."""
        self.state.status = status
        self.upsert_status()
        self.changed()

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def amend(
        self,
        key: str,
        reason: str,
        withdraw: list[tuple[str, str]],
        declare: list[tuple[str, str]] | None = None,
        withdraw_all: bool = False,
    ) -> None:
        """Withdraw what the run will no longer do, declare what it will (audit contract)."""
        req = AmendContractRequest(
            run_id=self.state.run_id,
            tenant_id=self.state.tenant_id,
            key=key,
            withdraw=withdraw,
            declare=declare or [],
            withdraw_all_open=withdraw_all,
            reason=reason,
        )
        await self.must(AuditActivities.amend_contract, req)

    async def create_incident(self, outcome: Outcome, in_saga: bool = False) -> IncidentResult:
        """The incident ``outcome.incident`` describes, linked to this run (``in_saga``: a
        governance write, else a must-write)."""
        spec = outcome.incident
        assert spec is not None
        write = self.saga if in_saga else self.must
        return await write(
            IncidentActivities.create_for_run,
            IncidentRequest(
                run_id=self.state.run_id,
                tenant_id=self.state.tenant_id,
                category=spec.category,
                severity=spec.severity,
                title=f"{spec.title}: run {self.state.run_id}",
                description=outcome.reason or spec.title,
            ),
        )

    def mirror_tenant(self) -> None:
        """TenantId and the phase, unless the starter already set them (runs_client)."""
        s = self.state
        if not s.config.search_attributes:
            return
        if workflow.info().typed_search_attributes.get(search_attributes.TENANT_ID) == s.tenant_id:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.TENANT_ID.value_set(s.tenant_id),
                search_attributes.RUN_PHASE.value_set(s.phase),
                search_attributes.RUN_STATUS.value_set(s.status),
            ]
        )

    def upsert_status(self) -> None:
        s = self.state
        if s.config_ is None or not s.config_.search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.RUN_PHASE.value_set(s.phase),
                search_attributes.RUN_STATUS.value_set(s.status),
            ]
        )
