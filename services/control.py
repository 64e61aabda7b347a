"""The control domain: mid-execution policy checks, pause records, refused signals and stop
requests. The one writer of ``pause_records`` and ``stop_requests`` (a check's row:
services.policies; a paused run's status: services.runs).
"""

import time

from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLedgerEntry, PauseRecord, Run, StopRequest, Tenant
from domain.control import Baseline, LiveState, decide, effective_budget, find_violations
from domain.enums import RunStatus, TenantStatus
from domain.ids import derive_id
from domain.messages import (
    Done,
    PauseRecordRequest,
    PauseUpdateRequest,
    PolicyCheckRequest,
    PolicyCheckResult,
    RefusalRequest,
)
from observability import metrics
from services.errors import AdminError
from services.events import emit
from services.ledger import Execution, audit_entry, run_once, utcnow
from services.policies import record_policy_check, rule_state
from services.runs import set_status

RESOLUTIONS = {"RESUMED", "AUTO_RESUMED", "APPROVED", "STOPPED", "TIMED_OUT", "CANCELLED"}


def check_policy(
    sessions: sessionmaker[Session], execution: Execution, req: PolicyCheckRequest
) -> PolicyCheckResult:
    """Compare live tenant, budget, rules and stop requests with the run's start."""

    def write(session: Session) -> PolicyCheckResult:
        tenant = session.get(Tenant, req.tenant_id)
        rules = rule_state(session, req.tenant_id)
        budget = effective_budget(req.run_budget, tenant.budget_limit if tenant else None)
        state = LiveState(
            cost=req.cost,
            budget_limit=budget,
            tenant_active=tenant is not None and tenant.status == TenantStatus.ACTIVE,
            stop_requested=session.get(StopRequest, req.run_id) is not None,
            limits_version=tenant.limits_version if tenant else None,
            policy_version=rules.policy_version,
            enabled_rule_ids=frozenset(rules.enabled_rule_ids),
        )
        baseline = Baseline(req.limits_version, req.policy_version, frozenset(req.enabled_rule_ids))
        violations = find_violations(state, baseline)
        decision = decide(violations)
        record_policy_check(
            session,
            run_id=req.run_id,
            tenant_id=req.tenant_id,
            step_index=req.step_index,
            decision=decision,
            violations=violations,
            cost=req.cost,
        )
        decided.append(decision)
        return PolicyCheckResult(
            decision=decision,
            violations=violations,
            budget_limit=budget,
            limits_version=state.limits_version,
            policy_version=state.policy_version,
            enabled_rule_ids=rules.enabled_rule_ids,
        )

    decided: list[str] = []  # set when this call did the write (not a ledger replay)
    key = f"control.check_policy:{req.step_index}"
    began = time.monotonic()
    result = run_once(sessions, execution, key, PolicyCheckResult, write)
    for decision in decided:
        metrics.record_policy_check(req.tenant_id, decision, time.monotonic() - began)
    return result


def record_pause(
    sessions: sessionmaker[Session], execution: Execution, req: PauseRecordRequest
) -> None:
    """The pause record, the run's status ``paused`` and the RUN_PAUSED entry."""

    def write(session: Session) -> Done:
        pause_id = derive_id(req.run_id, "pause", req.pause_no)
        session.add(
            PauseRecord(
                id=pause_id,
                run_id=req.run_id,
                tenant_id=req.tenant_id,
                reason=req.reason,
                paused_by=req.actor_id,
                paused_by_authority=req.authority,
                paused_at=req.paused_at,
                sla_deadline=req.sla_deadline,
                resumable_by=list(req.resumable_by),
                timeout_behavior=req.timeout_behavior,
            )
        )
        set_status(session, req.run_id, RunStatus.PAUSED)
        audit_entry(
            session,
            key=f"{req.run_id}/pause/{req.pause_no}",
            tenant_id=req.tenant_id,
            event_type="RUN_PAUSED",
            entity_type="pause",
            entity_id=pause_id,
            actor_id=req.actor_id,
            actor_authority=req.authority,
            after_state={
                "run_id": req.run_id,
                "reason": req.reason,
                "sla_deadline": req.sla_deadline.isoformat(),
                "resumable_by": list(req.resumable_by),
            },
        )
        return Done()

    run_once(sessions, execution, f"control.record_pause:{req.pause_no}", Done, write,
             tenant_id=req.tenant_id)  # fmt: skip


def update_pause(
    sessions: sessionmaker[Session], execution: Execution, req: PauseUpdateRequest
) -> None:
    """WARNED (emits run.pause_expiring), ESCALATED, or a resolution of the pause."""

    def write(session: Session) -> Done:
        pause = session.get_one(PauseRecord, derive_id(req.run_id, "pause", req.pause_no))
        now = utcnow()
        if req.kind == "WARNED":
            pause.warned_at = now
            emit(
                session,
                key=f"{req.run_id}/pause/{req.pause_no}",
                topic="run.pause_expiring",
                tenant_id=req.tenant_id,
                run_id=req.run_id,
                payload={
                    "pause_no": req.pause_no,
                    "reason": pause.reason,
                    "sla_deadline": pause.sla_deadline.isoformat(),
                },
            )
        elif req.kind == "ESCALATED":
            pause.escalated_at = now
        elif req.kind in RESOLUTIONS:
            pause.resolved_at = now
            pause.resolution = req.kind
            pause.resolved_by = req.actor_id
            if req.kind in ("RESUMED", "AUTO_RESUMED", "APPROVED"):
                set_status(session, req.run_id, RunStatus.RUNNING)
        else:
            raise ValueError(f"unknown pause update {req.kind!r}")
        audit_entry(
            session,
            key=f"{req.run_id}/pause/{req.pause_no}/{req.kind}",
            tenant_id=req.tenant_id,
            event_type=f"PAUSE_{req.kind}",
            entity_type="pause",
            entity_id=pause.id,
            actor_id=req.actor_id,
            actor_authority=req.authority,
            after_state={"run_id": req.run_id, "pause_no": req.pause_no, "kind": req.kind,
                         **({"digest": req.digest} if req.digest else {})},
        )  # fmt: skip
        return Done()

    run_once(sessions, execution, f"control.update_pause:{req.pause_no}:{req.kind}", Done,
             write, tenant_id=req.tenant_id)  # fmt: skip


def record_refusal(
    sessions: sessionmaker[Session], execution: Execution, req: RefusalRequest
) -> None:
    """Audit a refused signal; the run itself is not touched."""

    def write(session: Session) -> Done:
        audit_entry(
            session,
            key=f"{req.run_id}/refusal/{req.key}",
            tenant_id=req.tenant_id,
            event_type="SIGNAL_REFUSED",
            entity_type="run",
            entity_id=req.run_id,
            actor_id=req.actor_id,
            actor_authority=req.authority,
            source="signal",
            after_state={"run_id": req.run_id, "signal": req.signal, "reason": req.reason},
        )
        return Done()

    run_once(sessions, execution, f"control.record_refusal:{req.key}", Done, write,
             tenant_id=req.tenant_id)  # fmt: skip


def record_refused_update(sessions: sessionmaker[Session], run_id: str, update_id: str,
                          control: str, actor_id: str, authority: str | None,
                          reason: str) -> None:  # fmt: skip
    """Audit a control Update the run refused (its validator wrote nothing to the history):
    a SIGNAL_REFUSED entry (source ``update``) keyed by the update id, once."""
    with sessions.begin() as session:
        run = session.get(Run, run_id)
        if run is None:
            return  # not opened yet: nothing to attach the refusal to
        key = f"{run_id}/refusal/update/{update_id}"
        if session.get(AuditLedgerEntry, derive_id("audit-ledger", key)) is not None:
            return
        audit_entry(
            session,
            key=key,
            tenant_id=run.tenant_id,
            event_type="SIGNAL_REFUSED",
            entity_type="run",
            entity_id=run_id,
            actor_id=actor_id,
            actor_authority=authority,
            source="update",
            after_state={"run_id": run_id, "signal": control, "reason": reason},
        )


def request_stop(sessions: sessionmaker[Session], run_id: str, reason: str,
                 actor: str = "operator") -> None:  # fmt: skip
    """Ask a run to stop at its next policy check (MANUAL_STOP → TERMINATE); a second
    request for the same run changes nothing."""
    with sessions.begin() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise AdminError(f"unknown run {run_id!r}")
        if run.phase in ("COMPLETED", "FAILED"):
            raise AdminError(f"run {run_id} has ended ({run.phase}); cannot request a stop")
        if session.get(StopRequest, run_id) is not None:
            return
        session.add(StopRequest(run_id=run_id, tenant_id=run.tenant_id, requested_by=actor,
                                reason=reason, requested_at=utcnow()))  # fmt: skip
        audit_entry(
            session,
            key=f"{run_id}/stop-requested",
            tenant_id=run.tenant_id,
            event_type="STOP_REQUESTED",
            entity_type="run",
            entity_id=run_id,
            after_state={"run_id": run_id, "reason": reason},
            actor_id=actor,
            actor_authority="TENANT_ADMIN",
            source="admin",
        )
