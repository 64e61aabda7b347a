"""A step's admission and its write.

Admission (``admit``, one transaction before the skill runs): the step's recorded result,
if this execution recorded one (then nothing else happens: a recorded step never runs
again), the judgement of the tenant's rules and budget for this step
(services.policies.judge_before_step) — a step they stop is not run — then one of the
tenant's steps-in-flight slots (services.step_slots).

The write (``record_step``): its trace step (a link of the hash chain), its ack, the slot
it gives back, the prevention records of its judgement and, when the egress policy refused
its call, the EGRESS_REFUSED audit entry — in one transaction, once per step (the skill
itself runs in activities.steps, outside it). A prevented step records its prevention and
no trace step or ack (it did not run).

The ledger is read before the skill runs (in ``admit``), so a step whose result was
recorded is never executed again, even if its activity completion was lost.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from domain import contract
from domain.enums import AckStatus
from domain.hashchain import step_content, step_hash, with_secrets_proof
from domain.ids import derive_id
from domain.messages import StepRequest, StepResult
from domain.models import AwaitedApproval
from domain.policy_rules import StepVerdict
from services import policies, step_slots
from services.ledger import (
    Execution,
    ack,
    audit_entry,
    recorded_result,
    run_once,
    utcnow,
)
from services.traces import insert_step, trace_id_for


@dataclass(frozen=True)
class Executed:
    """What running a step produced: its result (redacted), the secrets digest, and the
    audit record of an egress refusal (redacted), if it was refused."""

    result: StepResult
    secrets_sha256: str | None = None
    refusal: dict[str, Any] | None = None
    verdict: StepVerdict = field(default_factory=lambda: StepVerdict(None, []))


@dataclass(frozen=True)
class Admission:
    """What admission decided: the judgement, and whether the step holds a slot (a stopped
    step, or one awaiting its approval, takes none; a step without one waits in its
    workflow)."""

    verdict: StepVerdict
    slot_taken: bool
    awaited: AwaitedApproval | None = None  # held until this approval arrives
    recorded: StepResult | None = None  # this execution recorded the step already

    @property
    def awaiting_approval(self) -> StepResult | None:
        if self.awaited is None:
            return None
        return StepResult(ok=False, output={}, cost=Decimal(0), approval_required=self.awaited)

    @property
    def prevented(self) -> StepResult | None:
        """The result of a step its judgement stopped (nothing ran, nothing cost)."""
        stop = self.verdict.prevented
        if stop is None:
            return None
        return StepResult(ok=False, output={}, cost=Decimal(0), error=stop.reason,
                          prevented=policies.prevention_of(stop))  # fmt: skip


NOTHING_JUDGED = StepVerdict(None, [])


def admit(
    sessions: sessionmaker[Session],
    execution: Execution,
    req: StepRequest,
    slot: step_slots.SlotRequest,
    reserved: Decimal,
    now: datetime,
) -> Admission:
    """The step's recorded result if it has one; else judge it (rules, budget with its
    reservation; a REQUIRE_APPROVAL match needs the approval of this step's digest) and take
    its slot: one transaction."""
    with sessions.begin() as session:
        first = recorded_result(session, execution, step_key(req.index))
        if first is not None:
            recorded = StepResult.model_validate(first)
            return Admission(NOTHING_JUDGED, slot_taken=False, recorded=recorded)
        verdict = policies.judge_before_step(session, req, reserved)
        if verdict.prevented is not None:
            return Admission(verdict, slot_taken=False)
        if verdict.approval is not None:
            awaited = policies.awaited_approval(session, req, verdict.approval)
            if req.approved_digest != awaited.digest:
                return Admission(verdict, slot_taken=False, awaited=awaited)
            verdict = policies.approved(verdict, awaited)
        return Admission(verdict, step_slots.acquire_in(session, slot, now))


def step_key(index: int) -> str:
    return f"steps.execute:{index}"


def content_of(
    req: StepRequest, result: StepResult, stored_input: dict[str, Any] | None = None
) -> dict:
    """What the step's hash covers; ``stored_input`` is the input as the trace step stores
    it (with the secrets digest when the step used secrets)."""
    return step_content(
        run_id=req.run_id,
        step_index=req.index,
        skill=req.skill,
        input=req.input if stored_input is None else stored_input,
        output=result.output,
        cost=result.cost,
        status="OK" if result.ok else "FAILED",
        error=result.error,
    )


def record_step(
    sessions: sessionmaker[Session],
    execution: Execution,
    req: StepRequest,
    executed: Executed,
    slot_id: str,
) -> StepResult:
    """Record what the step produced, once; returns the recorded result (with its hash
    when the run is traced)."""
    return run_once(
        sessions,
        execution,
        step_key(req.index),
        StepResult,
        lambda session: _write(session, req, executed, slot_id),
        tenant_id=req.tenant_id,
    )


def _write(session: Session, req: StepRequest, executed: Executed, slot_id: str) -> StepResult:
    step_slots.release(session, slot_id)
    result = recorded = executed.result
    policies.record_step_judgement(session, req, executed.verdict)
    if req.traced and result.prevented is None:
        stored_input = with_secrets_proof(req.input, executed.secrets_sha256)
        content = content_of(req, result, stored_input)
        digest = step_hash(req.prev_hash, content)
        recorded = result.model_copy(update={"hash": digest})
        step_id = derive_id(req.run_id, "trace-step", req.index)
        insert_step(
            session,
            id=step_id,
            trace_id=trace_id_for(req.run_id),
            run_id=req.run_id,
            step_index=req.index,
            skill=req.skill,
            input=stored_input,
            output=result.output,
            cost=result.cost,
            status=content["status"],
            error=result.error,
            prev_hash=req.prev_hash,
            hash=digest,
            created_at=utcnow(),
        )
        domain, action = contract.record_step(req.index)
        ack(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            domain=domain,
            action=action,
            result_id=step_id,
            status=AckStatus.ACKED if result.ok else AckStatus.FAILED,
            error=result.error,
        )
    if executed.refusal is not None:
        _audit_refusal(session, req, executed.refusal)
    return recorded


def _audit_refusal(session: Session, req: StepRequest, refusal: dict[str, Any]) -> None:
    """The prevention, with its reason, in the audit ledger (one per step: a stable key)."""
    audit_entry(
        session,
        key=f"{req.run_id}/egress/{req.index}",
        tenant_id=req.tenant_id,
        event_type="EGRESS_REFUSED",
        entity_type="run",
        entity_id=req.run_id,
        after_state={"run_id": req.run_id, "step_index": req.index, "skill": req.skill,
                     **refusal},
    )  # fmt: skip
